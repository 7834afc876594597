//! Least squares with non-negativity (Lawson and Hanson's active-set NNLS),
//! weighted by 1/measured so that small layers count as much as large ones,
//! and with lower bounds (bounded-variable least squares by substitution:
//! `t = t_min + s`, `s >= 0`), which is how a fit respects physical peaks.

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
    fit_relative_bounded(x, y, &vec![0.0; x.ncols()])
}

/// [`fit_relative`] with `t >= lower` (each `lower[j] >= 0`; a column with no
/// work gets its bound). Solved as NNLS in `s = t - lower` on the residual
/// the bounds leave, `y - X lower`.
pub fn fit_relative_bounded(x: &DMatrix<f64>, y: &[f64], lower: &[f64]) -> DVector<f64> {
    fit_relative_with_fixed(x, y, &vec![0.0; y.len()], lower)
}

/// [`fit_relative_bounded`] of `y ~ fixed + X t`: each row's `fixed`
/// milliseconds come from constants fitted before (the bf16 model under a
/// precision fit), so only `t` is solved for, still weighted by 1/y.
pub fn fit_relative_with_fixed(x: &DMatrix<f64>, y: &[f64], fixed: &[f64], lower: &[f64]) -> DVector<f64> {
    let lower: Vec<f64> = (0..x.ncols())
        .map(|j| {
            lower
                .get(j)
                .copied()
                .filter(|l| l.is_finite() && *l > 0.0)
                .unwrap_or(0.0)
        })
        .collect();
    let weighted = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] / y[i]);
    let norms: Vec<f64> = (0..x.ncols()).map(|j| weighted.column(j).norm()).collect();
    let scaled = DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
        if norms[j] > 0.0 {
            weighted[(i, j)] / norms[j]
        } else {
            0.0
        }
    });
    // relative residual (fixed + X (lower + s) - y) / y = weighted s - (1 - fixed/y - weighted lower)
    let rest = DVector::from_fn(x.nrows(), |i, _| {
        1.0 - fixed.get(i).copied().unwrap_or(0.0) / y[i]
            - (0..x.ncols()).map(|j| weighted[(i, j)] * lower[j]).sum::<f64>()
    });
    let s = nnls(&scaled, &rest);
    DVector::from_fn(x.ncols(), |j, _| {
        lower[j] + if norms[j] > 0.0 { s[j] / norms[j] } else { 0.0 }
    })
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

    #[test]
    fn fixed_parts_are_kept_and_only_the_rest_is_fitted() {
        // y = 5 (fixed, known) + 2 a + 0.5 b: the fit finds a and b alone.
        let x = DMatrix::from_row_slice(4, 2, &[1.0, 1.0, 2.0, 1.0, 3.0, 2.0, 4.0, 1.0]);
        let y: Vec<f64> = (0..4).map(|i| 5.0 + 2.0 * x[(i, 0)] + 0.5 * x[(i, 1)]).collect();
        let t = fit_relative_with_fixed(&x, &y, &[5.0; 4], &[0.0, 0.0]);
        assert!((t[0] - 2.0).abs() < 1e-9 && (t[1] - 0.5).abs() < 1e-9, "{t}");
    }

    #[test]
    fn lower_bounds_hold_and_the_rest_refits() {
        // Truth 2 a + 0.5 b; with b >= 1 the fit keeps b at its bound and a
        // absorbs what it can; an unused column gets its bound.
        let x = DMatrix::from_row_slice(4, 3, &[1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 3.0, 2.0, 0.0, 4.0, 1.0, 0.0]);
        let y: Vec<f64> = (0..4).map(|i| 2.0 * x[(i, 0)] + 0.5 * x[(i, 1)]).collect();
        let free = fit_relative_bounded(&x, &y, &[0.0, 0.0, 0.0]);
        assert!((free[0] - 2.0).abs() < 1e-9 && (free[1] - 0.5).abs() < 1e-9, "{free}");
        let t = fit_relative_bounded(&x, &y, &[0.0, 1.0, 0.25]);
        assert!(t[1] >= 1.0 && (t[1] - 1.0).abs() < 1e-12, "{t}");
        assert_eq!(t[2], 0.25);
        assert!(t[0] > 0.0 && t[0] < 2.0, "{t}");
        // a bound already above the data: every other throughput goes to 0
        let t = fit_relative_bounded(&x, &y, &[3.0, 0.0, 0.0]);
        assert_eq!((t[0], t[1]), (3.0, 0.0));
    }
}
