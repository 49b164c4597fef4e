//! Python's `round(x, ndigits)` for `f64`.
//!
//! CPython rounds correctly on the exact binary value with ties to even: it formats the
//! number with `ndigits` decimals using exact decimal conversion, then parses the text back.
//! Rust's `{:.N}` formatting is also exact with ties to even on the binary value, so doing
//! the same round trip gives bit-identical results (`round(0.125, 2) == 0.12`,
//! `round(2.675, 2) == 2.67`). A naive `(x * 100.0).round() / 100.0` differs on ties.

/// Rounds `x` to `ndigits` decimal places exactly like Python 3's `round(x, ndigits)`.
///
/// Non-finite values are returned unchanged (Python does the same for `nan`/`inf`).
pub fn py_round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let text = format!("{x:.ndigits$}");
    // The text was produced by the formatter from a finite f64, so it always parses.
    text.parse::<f64>().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::py_round;

    #[test]
    fn matches_python_on_ties_and_binary_representation() {
        assert_eq!(py_round(0.125, 2), 0.12);
        assert_eq!(py_round(0.375, 2), 0.38);
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(2.5, 0), 2.0);
        assert_eq!(py_round(1.5, 0), 2.0);
        assert_eq!(py_round(-0.125, 2), -0.12);
        assert_eq!(py_round(99.918_981_481_481_48, 6), 99.918981);
    }
}
