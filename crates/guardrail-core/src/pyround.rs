//! Python's `round(x, ndigits)` for `f64`, and CPython 3.12's `sum()` ([`py_sum`]).
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

/// A number as a Python program holds it after `json.load`: an `int` or a `float`.
///
/// The distinction matters for arithmetic: CPython sums leading ints exactly, adds an int to
/// a float sum without compensation, and divides ints by true (correctly rounded) division.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PyNumber {
    /// A Python `int` (whole numbers up to what the readers accept; sums widen to `i128`).
    Int(i128),
    /// A Python `float`.
    Float(f64),
}

impl PyNumber {
    /// The value as a float, converted the way CPython converts an int to a float
    /// (`PyLong_AsDouble`: round half to even; Rust's `as` does the same, and an `i128`
    /// never exceeds the float range).
    pub fn as_f64(self) -> f64 {
        match self {
            PyNumber::Float(f) => f,
            PyNumber::Int(i) => i as f64,
        }
    }
}

/// `a + b` with Python's rules for int and float operands (an int meeting a float is
/// converted to a float first).
fn py_add(a: PyNumber, b: PyNumber) -> PyNumber {
    match (a, b) {
        (PyNumber::Int(x), PyNumber::Int(y)) => match x.checked_add(y) {
            Some(v) => PyNumber::Int(v),
            // Python would keep an exact big int; beyond i128 (never reached by sums of i64
            // values shorter than 2^64 items) the float of the sum is the best we can say.
            None => PyNumber::Float(x as f64 + y as f64),
        },
        (PyNumber::Int(x), PyNumber::Float(y)) => PyNumber::Float(x as f64 + y),
        (PyNumber::Float(x), PyNumber::Int(y)) => PyNumber::Float(x + y as f64),
        (PyNumber::Float(x), PyNumber::Float(y)) => PyNumber::Float(x + y),
    }
}

/// CPython 3.12's `sum(iterable)` (start `0`) over ints and floats, step for step as
/// `builtin_sum_impl` in `Python/bltinmodule.c` does it:
///
/// 1. Ints are summed exactly in a C `long` (`i64`) while every item is an int.
/// 2. The first float (or an int that would overflow the `long`) is added to the int total
///    with a plain `+` (so `sum([-0.0])` is `0.0`, and the rounding error of that addition
///    is not carried).
/// 3. If that made a float, the rest is summed with Neumaier's compensated algorithm: for a
///    float item `t = s + x` and the lost low-order part goes into `c`; an int item is added
///    to `s` uncompensated. At the end `c` is added to `s` only when it is non-zero and finite
///    (so an infinite or overflowed sum is not turned into a NaN).
/// 4. After an int overflow, everything that follows is plain left-to-right `+`.
///
/// Python 3.11 and earlier added left to right (`sum([0.1] * 10)` was `0.9999999999999999`;
/// in 3.12 it is `1.0`). An empty iterable gives `Int(0)`.
pub fn py_sum<I: IntoIterator<Item = PyNumber>>(items: I) -> PyNumber {
    let mut items = items.into_iter();
    // Step 1: the int fast path in a C long.
    let mut int_total: i64 = 0;
    let mut result = loop {
        match items.next() {
            None => return PyNumber::Int(i128::from(int_total)),
            Some(PyNumber::Int(b)) if i64::try_from(b).is_ok_and(|b| int_total.checked_add(b).is_some()) => {
                int_total += b as i64;
            }
            // Step 2: overflow or a float: one plain addition.
            Some(item) => break py_add(PyNumber::Int(i128::from(int_total)), item),
        }
    };
    // Step 3: the float fast path with compensation.
    if let PyNumber::Float(start) = result {
        let mut sum = start;
        let mut c = 0.0_f64;
        loop {
            match items.next() {
                None => {
                    if c != 0.0 && c.is_finite() {
                        sum += c;
                    }
                    return PyNumber::Float(sum);
                }
                Some(PyNumber::Float(x)) => {
                    let t = sum + x;
                    if sum.abs() >= x.abs() {
                        c += (sum - t) + x;
                    } else {
                        c += (x - t) + sum;
                    }
                    sum = t;
                }
                Some(PyNumber::Int(v)) if i64::try_from(v).is_ok() => {
                    sum += v as f64;
                }
                Some(item) => {
                    // An int outside a C long: flush the compensation, then the slow path.
                    if c != 0.0 && c.is_finite() {
                        sum += c;
                    }
                    result = py_add(PyNumber::Float(sum), item);
                    break;
                }
            }
        }
    }
    // Step 4: the generic loop, `result = result + item`.
    for item in items {
        result = py_add(result, item);
    }
    result
}

/// [`py_sum`] of a list of Python floats, as a float (`sum([])` is `0`, returned as `0.0`).
pub fn py_sum_floats(items: &[f64]) -> f64 {
    // Only the empty list stays an int (0).
    py_sum(items.iter().map(|x| PyNumber::Float(*x))).as_f64()
}

#[cfg(test)]
mod tests {
    use super::{PyNumber, py_round, py_sum, py_sum_floats};

    fn f(x: f64) -> PyNumber {
        PyNumber::Float(x)
    }

    // Expected values are CPython 3.12's; where 3.11 differs, its value is named too.
    #[test]
    fn sum_is_compensated_like_python_3_12() {
        // 3.11: 0.9999999999999999
        assert_eq!(py_sum_floats(&[0.1; 10]), 1.0);
        // The burn series: 3.11 gives 14.999999999999998 (mean 4.999999999999999,
        // burn "medium"); 3.12 gives 15.0 (mean 5.0, "high").
        assert_eq!(py_sum_floats(&[6.35, 6.05, 2.6]), 15.0);
        assert_eq!(py_sum_floats(&[6.35, 6.05, 2.6]) / 3.0, 5.0);
        assert_eq!(py_sum_floats(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(py_sum_floats(&[0.1, 0.2, 0.3]), 0.6);
        assert_eq!(py_sum_floats(&[]), 0.0);
    }

    #[test]
    fn sum_keeps_python_3_12_non_finite_rules() {
        // The compensation becomes NaN and is not applied: the sum stays infinite.
        assert_eq!(py_sum_floats(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert_eq!(py_sum_floats(&[1e308, 1e308]), f64::INFINITY);
        assert_eq!(py_sum_floats(&[1e308, 1e308, -1e308]), f64::INFINITY);
        assert!(py_sum_floats(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(py_sum_floats(&[1.0, f64::NAN]).is_nan());
        // int 0 + -0.0 is 0.0: the sign of a lone negative zero is lost, as in Python.
        assert!(py_sum_floats(&[-0.0]).is_sign_positive());
        assert!(py_sum_floats(&[-0.0, -0.0]).is_sign_positive());
    }

    #[test]
    fn sum_of_ints_and_mixed_lists() {
        assert_eq!(py_sum([PyNumber::Int(1), PyNumber::Int(2)]), PyNumber::Int(3));
        assert_eq!(py_sum(std::iter::empty()), PyNumber::Int(0));
        // Leading ints are exact; the first float is one plain addition whose rounding
        // error is not carried: [1, 0.2, 2.6] is 3.8 where [1.0, 0.2, 2.6] is
        // 3.8000000000000003 (values from CPython 3.12's algorithm).
        assert_eq!(py_sum([PyNumber::Int(1), f(0.2), f(2.6)]), f(3.8));
        assert_eq!(py_sum_floats(&[1.0, 0.2, 2.6]), 3.8000000000000003);
        // An int after a float is added without compensation.
        assert_eq!(py_sum([f(6.05), f(0.1), PyNumber::Int(6)]), f(12.149999999999999));
        assert_eq!(py_sum_floats(&[6.05, 0.1, 6.0]), 12.15);
        // Past i64 the ints stay exact (a Python big int), then plain additions.
        let big = py_sum([PyNumber::Int(i64::MAX as i128), PyNumber::Int(1)]);
        assert_eq!(big, PyNumber::Int(i64::MAX as i128 + 1));
    }

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
