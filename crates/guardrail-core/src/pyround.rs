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

impl std::fmt::Display for PyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PyNumber::Int(i) => write!(f, "{i}"),
            PyNumber::Float(x) => write!(f, "{x}"),
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

/// Python's true division `a / b` of two ints, correctly rounded (round half to even) as
/// CPython's `long_true_divide` is at any size; `None` for `b == 0` (Python raises
/// `ZeroDivisionError`).
///
/// `a as f64 / b as f64` is only right while both are at most 2^53: above that each
/// conversion rounds first, and the quotient can land one unit off (issue 10: availability
/// from 76,375,555,000,000,000 requests).
pub fn py_int_true_div(a: i128, b: i128) -> Option<f64> {
    if b == 0 {
        return None;
    }
    let negative = (a < 0) != (b < 0);
    let (n, d) = (a.unsigned_abs(), b.unsigned_abs());
    const EXACT: u128 = 1 << 53;
    let magnitude = if n <= EXACT && d <= EXACT {
        // Both exact as floats: one IEEE division is correctly rounded (CPython's fast path).
        n as f64 / d as f64
    } else {
        divide_rounded(n, d)
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `n / d` for `d > 0`, rounded to nearest, ties to even, by long division: the quotient's
/// first 55 significant bits, plus a sticky bit for any remainder.
fn divide_rounded(n: u128, d: u128) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let bits = |x: u128| 128 - x.leading_zeros() as i32;
    let (mut m, mut r) = (n / d, n % d);
    let mut exp: i32 = 0; // value = (m + r/d) * 2^exp
    let mut sticky = false;
    if bits(m) > 55 {
        let drop = bits(m) - 55;
        sticky = m & ((1u128 << drop) - 1) != 0 || r != 0;
        m >>= drop;
        exp = drop;
    } else {
        // Bring down one bit at a time; `r < d <= 2^127`, so `2r` fits.
        while bits(m) < 55 {
            r <<= 1;
            m <<= 1;
            if r >= d {
                r -= d;
                m |= 1;
            }
            exp -= 1;
        }
        sticky = sticky || r != 0;
    }
    // m has 55 bits: keep 53, round on the guard bit, the last bit and the sticky bit.
    let mut keep = m >> 2;
    let guard = (m >> 1) & 1 == 1;
    let rest = m & 1 == 1 || sticky;
    if guard && (rest || keep & 1 == 1) {
        keep += 1;
    }
    exp += 2;
    if keep == 1 << 53 {
        keep >>= 1;
        exp += 1;
    }
    // keep < 2^53 converts exactly; the power of two is built from its bits (the exponent
    // stays within the normal range: |n / d| lies in [2^-127, 2^128]).
    keep as f64 * f64::from_bits(((1023 + exp) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::{PyNumber, py_int_true_div, py_round, py_sum, py_sum_floats};

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

    /// Quotients from Python (`a / b` on ints is correctly rounded in every CPython 3).
    #[test]
    fn int_true_division_is_correctly_rounded() {
        let cases: &[(i128, i128, u64)] = &[
            (76322087910844475, 76375555000000000, 0x3feffa43e0d56d5a),
            (9007199254740993, 9007199254740995, 0x3feffffffffffffe),
            (1, 3, 0x3fd5555555555555),
            (18446744073709551615, 18446744073709551613, 0x3ff0000000000000),
            (9223372036854775807, 9223372036854775806, 0x3ff0000000000000),
            (1, 9223372036854775807, 0x3c00000000000000),
            (1267650600228229401496703205383, 3, 0x4615555555555555),
            (5, 1329227995784915872903807060280344577, 0x3894000000000000),
            (170141183460469231731687303715884105727, 85070591730234615865843651857942052869, 0x4000000000000000),
            (-7, 1152921504606846977, 0xbc5c000000000000),
            (22366321978885252, 300544187282452692, 0x3fb30d2690bf6350),
            (70140292169920569, 136805169105849017, 0x3fe0680e2720bd7a),
            (3251571563385788899, 4531409703019074138, 0x3fe6f646818558ec),
            (7159321691225926615, 7476638668926089670, 0x3feea45280faf2a7),
            (4169341491990342421, 4520241682985948760, 0x3fed8410f4042cb7),
            (1907877864898033951, 8784332384918030385, 0x3fcbccea17da1cf1),
            (1392365170943479764, 3331100424863112176, 0x3fdac0573ee8e9d2),
            (460420138752594011, 1279182766435697540, 0x3fd70924944c01f5),
            (72310112765983227, 3885474537133895178, 0x3f930e98af8e3ff7),
            (1613959289554574369, 2419485196769984270, 0x3fe5589d606d9aa2),
            (1123511939488930732, 2795651248782876255, 0x3fd9b860504c5859),
            (248144215290795579, 4214420807046847243, 0x3fae257def69dc30),
            (1194134683690310847, 2207893436684529502, 0x3fe14ea0670654f1),
            (772708410481070703, 3461005733469027473, 0x3fcc93d2f8f725a3),
            (1723992149705210887, 2173523867229340168, 0x3fe961b7a2abcffa),
            (3442559738097516866, 8389470747007223377, 0x3fda430edba59304),
            (4905664377090967377, 7120954893853767631, 0x3fe60b835dbc2770),
            (1992865837948603567, 6149129422339974497, 0x3fd4bde03875a580),
            (1323416546617082944, 4334744806772160920, 0x3fd38a1b5aa7a800),
            (680037104462331107, 2994720813558846040, 0x3fcd10e9a03d55ca),
            (5569082245338707263, 7767694401279300094, 0x3fe6f14a3ca0b2cc),
            (119202138106790011, 292811508687300765, 0x3fda0dd8b7705aa9),
            (4931206185500788941, 5595609664485544763, 0x3fec334f5f429f08),
            (7778236602612506235, 8524864632871085007, 0x3fed328669b1e190),
            (2855445602498698721, 3545638178009511480, 0x3fe9c5593105073e),
            (1758513453865110284, 8889453998116440851, 0x3fc9522c01387487),
            (3192096283485938164, 4072587547824040170, 0x3fe914e4da07bff7),
            (1161014672688340526, 3216015491761705390, 0x3fd71acae30c569a),
            (4955499730894647354, 6279175461194425959, 0x3fe94117d3cfb2f7),
            (2350390871707213637, 4813280846671005447, 0x3fdf408802e73f58),
            (1986862293446186445, 2790715956709231161, 0x3fe6c8546f6c3a5f),
            (867674504779828855, 1624138424578145427, 0x3fe11877c2c272b7),
            (806611846630011623, 2062951692685095113, 0x3fd90620422b5102),
            (262949354227464659, 402811808792654469, 0x3fe4e39c9333f31a),
            (547601087344028803, 2414377034990352270, 0x3fcd080f16c3957b),
            (316287652508405166, 1459433016420308765, 0x3fcbbd774521657e),
            (1449509313446146605, 8240870417923891287, 0x3fc683a7483e1ae1),
            (6646165068010805320, 9152087272898533095, 0x3fe73cf549c9a014),
            (2145859389800734015, 4451149050898933929, 0x3fdeda94ac872761),
            (1220887655510801404, 1533930222663102133, 0x3fe9782fd5b6dc27),
            (59418493696206496457077483721336137419, 16784643610744751095114907501299081902, 0x400c52063c9afa61),
            (74620236103201170125172087544328394442, 59487816869963024646577090266074787595, 0x3ff411ef25db831b),
            (44087248148194956971299143278344295176, 77966511363477161051761829143491084043, 0x3fe21847c3930469),
            (5597574628771050538446321291010144692, 19800331810204483460327327959768367460, 0x3fd217c627022b1b),
            (49223769330426020836682949800375438810, 81212816550246067621670799476253890507, 0x3fe3653d6b13d771),
            (68170458972902607676709511660577652892, 52489213688920725229972912851935003720, 0x3ff4c7afee877784),
            (76158988395597940324790777098333558209, 35475569551617559624865597967411754390, 0x40012ca60178471d),
            (19724036480691233778537628219349228293, 1318179915893059363535051526841339364, 0x402ded19503da522),
            (69496413816769489881467576715051528129, 61288620729497454049177084095694690765, 0x3ff22489a83dae07),
            (32942748684169781329238854238087785942, 79401647968733582945330891859424952904, 0x3fda8d842ab0e326),
            (84967001106333156012566200399481015243, 68832191257803112886632628200485516776, 0x3ff3c022814172d8),
            (59375736059860424097427041245109137679, 28670386344294432628526294713719777842, 0x4000915cda663d6e),
            (70735212006593889079941736815176206235, 52092780907637248493018436508924232981, 0x3ff5b9d5a4b7dd17),
            (67467040933999156606244528407914542753, 52356378735059473963470403529180817241, 0x3ff49e2746c434d5),
            (71740946657878661581564829001338493243, 66776849175640837609434518999957082947, 0x3ff1307dabff752c),
            (62265963917380578860429251054511970531, 55221221493553065997986004883234860655, 0x3ff20a8a1754a850),
            (27950352738436841464217818038465905881, 15007656617256067592871677661556548933, 0x3ffdcc6a71ade166),
            (80103875015775674601357441686832517175, 75187962909687497095690315786721653792, 0x3ff10bcd9d926bef),
            (60193499667270026669156720650429936019, 16509190721648565292239344498971861418, 0x400d2b217f46add2),
            (7034271707862455627549402450562801671, 72950965870216064065112667652046065174, 0x3fb8af494346dbda),
        ];
        for &(a, b, bits) in cases {
            assert_eq!(py_int_true_div(a, b).map(f64::to_bits), Some(bits), "{a} / {b}");
        }
        assert_eq!(py_int_true_div(1, 0), None);
        assert_eq!(py_int_true_div(0, 5), Some(0.0));
        // The counts: float division rounds each count first and lands one unit
        // above Python's quotient.
        let (success, total) = (76_375_555_000_000_000_i128 - 53_467_089_155_525, 76_375_555_000_000_000_i128);
        assert_ne!(py_int_true_div(success, total), Some(success as f64 / total as f64));
    }
}
