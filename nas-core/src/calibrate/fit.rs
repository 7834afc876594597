//! Least squares with non-negativity (Lawson and Hanson's active-set NNLS),
//! weighted by 1/measured so that small layers count as much as large ones.

use nalgebra::{DMatrix, DVector};

/// Solves min ||A x - b|| subject to x >= 0.
pub fn nnls(a: &DMatrix<f64>, b: &DVector<f64>) -> DVector<f64> {
    let n = a.ncols();
    let mut x = DVector::zeros(n);
    let mut passive = vec![false; n];
    let tol = 1e-12 * a.norm().max(1.0) * b.norm().max(1.0);
    for _ in 0..(3 * n + 10) {
        let w = a.transpose() * (b - a * &x);
        let candidate = (0..n)
            .filter(|&j| !passive[j] && w[j] > tol)
            .max_by(|&i, &j| w[i].total_cmp(&w[j]));
        let Some(t) = candidate else { break };
        passive[t] = true;
        for _ in 0..(3 * n + 10) {
            let s = solve_passive(a, b, &passive);
            let blocked: Vec<usize> = (0..n).filter(|&j| passive[j] && s[j] <= 0.0).collect();
            if blocked.is_empty() {
                x = s;
                break;
            }
            let alpha = blocked
                .iter()
                .map(|&j| x[j] / (x[j] - s[j]))
                .filter(|a| a.is_finite())
                .fold(1.0, f64::min);
            x += (s - &x) * alpha;
            for j in 0..n {
                if passive[j] && x[j] <= tol {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x
}

/// Unconstrained least squares on the passive columns, zero elsewhere.
fn solve_passive(a: &DMatrix<f64>, b: &DVector<f64>, passive: &[bool]) -> DVector<f64> {
    let cols: Vec<usize> = (0..a.ncols()).filter(|&j| passive[j]).collect();
    let sub = DMatrix::from_fn(a.nrows(), cols.len(), |i, k| a[(i, cols[k])]);
    let solved = sub
        .svd(true, true)
        .solve(b, 1e-12)
        .unwrap_or_else(|_| DVector::zeros(cols.len()));
    let mut s = DVector::zeros(a.ncols());
    for (k, &j) in cols.iter().enumerate() {
        s[j] = solved[k];
    }
    s
}

/// Fits `y ~ X t` with `t >= 0`, minimizing the sum of squared *relative*
/// residuals ((X t - y) / y). Columns are scaled to unit norm for
/// conditioning and the result scaled back. Columns with no work stay 0.
pub fn fit_relative(x: &DMatrix<f64>, y: &[f64]) -> DVector<f64> {
    let weighted = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] / y[i]);
    let norms: Vec<f64> = (0..x.ncols()).map(|j| weighted.column(j).norm()).collect();
    let scaled = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
        if norms[j] > 0.0 {
            weighted[(i, j)] / norms[j]
        } else {
            0.0
        }
    });
    let ones = DVector::from_element(x.nrows(), 1.0);
    let t = nnls(&scaled, &ones);
    DVector::from_fn(x.ncols(), |j, _| if norms[j] > 0.0 { t[j] / norms[j] } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_non_negative_throughputs() {
        // y = 2 a + 0.5 b + 3 c on varied rows; exact data recovers the truth.
        let rows: Vec<[f64; 3]> = (1..40)
            .map(|i| {
                let f = i as f64;
                [f, (f * 1.7).sin().abs() * 10.0 + 1.0, (40.0 - f).sqrt()]
            })
            .collect();
        let x = DMatrix::from_fn(rows.len(), 3, |i, j| rows[i][j]);
        let truth = DVector::from_vec(vec![2.0, 0.5, 3.0]);
        let y: Vec<f64> = (&x * &truth).iter().copied().collect();
        let t = fit_relative(&x, &y);
        for j in 0..3 {
            assert!((t[j] - truth[j]).abs() < 1e-9 * truth[j], "{t}");
        }
    }

    #[test]
    fn clamps_at_zero_where_unconstrained_least_squares_goes_negative() {
        // The second column only hurts the fit: NNLS keeps it at 0.
        let x = DMatrix::from_row_slice(4, 2, &[1.0, 1.0, 2.0, 0.0, 3.0, 1.0, 4.0, 0.0]);
        let y = [1.0, 2.0, 2.9, 4.0];
        let t = fit_relative(&x, &y);
        assert!(t[1] == 0.0 && (t[0] - 1.0).abs() < 0.05, "{t}");
        let unused = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 2.0, 0.0, 3.0, 0.0]);
        assert_eq!(fit_relative(&unused, &[1.0, 2.0, 3.0])[1], 0.0);
    }
}
