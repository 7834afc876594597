//! A scaling-law loss estimate: L(N, D) = E + A / N^alpha + B / D^beta.
//!
//! An estimate from a published fit to other people's training runs, not a
//! measurement of any model here; reports say so next to every figure.

use super::Parameters;

/// Which published fit of L(N, D).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ScalingLaw {
    /// Hoffmann et al. 2022 ("Chinchilla"), approach 3, as published:
    /// E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28.
    #[default]
    Chinchilla,
    /// Besiroglu et al. 2024 (Epoch AI), "Chinchilla Scaling: A replication
    /// attempt": E 1.8172, A 482.01, B 2085.43, alpha 0.3478, beta 0.3658.
    Epoch,
}

/// What N counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ParamCount {
    /// Every parameter, embeddings and LM head included, as Hoffmann et al. counted.
    #[default]
    All,
    /// Parameters outside the embedding and the LM head (Kaplan et al.'s convention).
    NonEmbedding,
}

/// A fit and what its N counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LossFit {
    pub law: ScalingLaw,
    pub count: ParamCount,
}

impl ScalingLaw {
    pub const ALL: [ScalingLaw; 2] = [ScalingLaw::Chinchilla, ScalingLaw::Epoch];

    /// (E, A, B, alpha, beta).
    pub fn constants(self) -> (f64, f64, f64, f64, f64) {
        match self {
            ScalingLaw::Chinchilla => (1.69, 406.4, 410.7, 0.34, 0.28),
            ScalingLaw::Epoch => (1.8172, 482.01, 2085.43, 0.3478, 0.3658),
        }
    }

    /// The name in specs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ScalingLaw::Chinchilla => "chinchilla",
            ScalingLaw::Epoch => "epoch",
        }
    }

    pub fn from_name(name: &str) -> Option<ScalingLaw> {
        ScalingLaw::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The source, for reports.
    pub fn citation(self) -> &'static str {
        match self {
            ScalingLaw::Chinchilla => {
                "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (approach 3)"
            }
            ScalingLaw::Epoch => "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt (Epoch AI)",
        }
    }
}

impl ParamCount {
    pub const ALL: [ParamCount; 2] = [ParamCount::All, ParamCount::NonEmbedding];

    pub fn name(self) -> &'static str {
        match self {
            ParamCount::All => "all",
            ParamCount::NonEmbedding => "non_embedding",
        }
    }

    pub fn from_name(name: &str) -> Option<ParamCount> {
        ParamCount::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl LossFit {
    pub const DEFAULT: LossFit = LossFit {
        law: ScalingLaw::Chinchilla,
        count: ParamCount::All,
    };

    /// The estimated loss (nats per token) of a model of `parameters`
    /// trained on `tokens` tokens.
    pub fn loss(&self, parameters: &Parameters, tokens: u64) -> f64 {
        self.loss_of(parameters.total, parameters.non_embedding, tokens)
    }

    /// The estimated loss of a dense model of `total` parameters
    /// (`non_embedding` of them outside the embedding and LM head).
    pub fn loss_of(&self, total: u64, non_embedding: u64, tokens: u64) -> f64 {
        let n = match self.count {
            ParamCount::All => total,
            ParamCount::NonEmbedding => non_embedding,
        } as f64;
        let (e, a, b, alpha, beta) = self.law.constants();
        e + a / n.powf(alpha) + b / (tokens as f64).powf(beta)
    }

    /// One sentence for reports: which fit, what N is, and that it is an estimate.
    pub fn describe(&self) -> String {
        format!(
            "Loss estimates are L(N, D) = E + A/N^alpha + B/D^beta from a published fit ({}), with N = {} parameters \
             and D = the declared training tokens: an extrapolation from other people's training runs, not a measurement.",
            self.law.citation(),
            match self.count {
                ParamCount::All => "all",
                ParamCount::NonEmbedding => "non-embedding",
            }
        )
    }
}
