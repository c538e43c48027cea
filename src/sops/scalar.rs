//! Scalar semantics copied from the Go side, because the MAC hashes values the
//! way Go formats them and YAML scalars resolve the way yaml.v3 resolves them.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike};

use super::tree::Value;

/// yaml.v3's resolution of a plain (unquoted, untagged) scalar.
/// Returns `None` for an integer that only fits u64, which sops cannot walk.
pub fn resolve_plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'0'..=b'9' | b'+' | b'-' => {
            if let Some(t) = parse_yaml_timestamp(s) {
                return Some(Value::Time(t));
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            match go_parse_int(&plain) {
                IntParse::Ok(i) => return Some(Value::Int(i)),
                IntParse::OnlyU64 => return None,
                IntParse::Err => {}
            }
            if is_yaml_style_float(&plain) {
                if let Some(f) = go_parse_float(&plain) {
                    return Some(Value::Float(f));
                }
            }
            let (neg, rest) = match plain.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, plain.as_str()),
            };
            for (prefix, radix) in [("0b", 2), ("0o", 8)] {
                if let Some(digits) = rest.strip_prefix(prefix) {
                    if let Ok(v) = i64::from_str_radix(digits, radix) {
                        return Some(Value::Int(if neg { -v } else { v }));
                    }
                }
            }
            Some(Value::Str(s.to_string()))
        }
        b'.' => match go_parse_float(s) {
            Some(f) => Some(Value::Float(f)),
            None => Some(Value::Str(s.to_string())),
        },
        _ => Some(Value::Str(s.to_string())),
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` without a regex engine.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

enum IntParse {
    Ok(i64),
    OnlyU64,
    Err,
}

/// Go's `strconv.ParseInt(s, 0, 64)` (with the `ParseUint` fallback yaml.v3 tries).
fn go_parse_int(s: &str) -> IntParse {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return IntParse::Err;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return IntParse::Err;
    }
    match u128::from_str_radix(digits, radix) {
        Ok(v) => {
            if neg {
                if v <= (i64::MAX as u128) + 1 {
                    IntParse::Ok((v as i128).wrapping_neg() as i64)
                } else {
                    IntParse::Err
                }
            } else if v <= i64::MAX as u128 {
                IntParse::Ok(v as i64)
            } else if v <= u64::MAX as u128 && !s.starts_with('+') {
                IntParse::OnlyU64
            } else {
                IntParse::Err
            }
        }
        Err(_) => IntParse::Err,
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms (plus inf/nan words).
pub fn go_parse_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower
            .parse::<f64>()
            .ok()
            .or(Some(if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else if unsigned == "nan" {
                f64::NAN
            } else {
                f64::INFINITY
            }));
    }
    if unsigned.is_empty()
        || !unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
    {
        return None;
    }
    lower.parse::<f64>().ok()
}

/// Go's `strconv.Atoi`, the parser sops uses for `type:int`.
pub fn go_atoi(s: &str) -> Option<i64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// Go's `strconv.ParseBool`.
pub fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
pub fn format_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's Display is shortest round-trip and never uses an exponent.
        format!("{v}")
    }
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`, as yaml.v3 writes a float: the
/// shortest round-trip digits, in exponent form (`1e+06`, `1.5e-07`: sign
/// and at least two digits) when the decimal exponent is below -4 or at
/// least 6 (Go's rule for the shortest precision), else plain (`1`, `-0`).
/// Non-finite values come out as Go writes them; YAML callers map them.
pub fn format_float_g(v: f64) -> String {
    if !v.is_finite() {
        return format_float_f(v);
    }
    // Rust's `{:e}` is shortest round-trip too: `-1.5e-7`, `1e21`, `0e0`.
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if (-4..6).contains(&exp) {
        return format_float_f(v);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// sops's `stores.ValToString`: how a non-string leaf is written into a
/// flat file (INI, dotenv) when converting to one. Floats keep a decimal
/// point or an `E` (`1.0`, `1E+21`), times drop their fraction, null is
/// Go's `<nil>`. `None` for containers.
pub fn flat_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".into(),
        Value::Time(t) => format_rfc3339_seconds(t),
        Value::Float(f) if f.is_finite() => {
            let g = format_float_g(*f).replace('e', "E");
            if g.contains(['.', 'E']) {
                g
            } else {
                format!("{g}.0")
            }
        }
        Value::Float(f) => format_float_f(*f),
        Value::Map(_) | Value::Seq(_) => return None,
    })
}

/// `time.MarshalText`: RFC 3339 with nanoseconds, trailing zeros dropped, `Z` for offset 0.
pub fn format_time(t: &DateTime<FixedOffset>) -> String {
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    push_offset(&mut out, t);
    out
}

/// Go's `Z07:00`: `Z` for offset 0, else `±hh:mm`.
fn push_offset(out: &mut String, t: &DateTime<FixedOffset>) {
    let off = t.offset().local_minus_utc();
    if off == 0 {
        out.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60));
    }
}

/// `time.Parse(time.RFC3339, s)` (fraction optional, as Go accepts on parse).
pub fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// `lastmodified` re-formatted with `time.RFC3339` (no fraction): the MAC's AAD.
pub fn format_rfc3339_seconds(t: &DateTime<FixedOffset>) -> String {
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    push_offset(&mut out, t);
    out
}

/// yaml.v3's timestamp resolution: `2006-1-2T15:4:5.999999999Z07:00`,
/// the same with `t`, `2006-1-2 15:4:5.999999999` (UTC), and `2006-1-2`.
pub fn parse_yaml_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut p = Cursor { b, i: 5 };
    let year: i32 = s[..4].parse().ok()?;
    let month = p.num(1, 2)?;
    p.expect(b'-')?;
    let day = p.num(1, 2)?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    if p.done() {
        return Some(FixedOffset::east_opt(0)?.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
    }
    let sep = p.next()?;
    let zoned = match sep {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    let hour = p.num(1, 2)?;
    p.expect(b':')?;
    let min = p.num(1, 2)?;
    p.expect(b':')?;
    let sec = p.num(1, 2)?;
    let mut nanos = 0u32;
    if p.peek() == Some(b'.') {
        p.i += 1;
        let st = p.i;
        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.i += 1;
        }
        let frac = &s[st..p.i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = format!("{frac:0<9}").parse().ok()?;
    }
    let naive = NaiveDateTime::new(
        date,
        chrono::NaiveTime::from_hms_nano_opt(hour, min, sec, nanos)?,
    );
    let offset = if zoned {
        match p.next()? {
            b'Z' => 0,
            c @ (b'+' | b'-') => {
                let h = p.num(2, 2)? as i32;
                p.expect(b':')?;
                let m = p.num(2, 2)? as i32;
                let o = h * 3600 + m * 60;
                if c == b'-' { -o } else { o }
            }
            _ => return None,
        }
    } else {
        0
    };
    if !p.done() {
        return None;
    }
    let tz = FixedOffset::east_opt(offset)?;
    tz.from_local_datetime(&naive).single()
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let st = self.i;
        while self.i - st < max && self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i - st < min {
            return None;
        }
        std::str::from_utf8(&self.b[st..self.i]).ok()?.parse().ok()
    }
}

/// `ToBytes`: the canonical bytes of a leaf, as hashed into the MAC and
/// encrypted into `ENC[]`. Containers and nulls have none.
pub fn to_bytes(v: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    Some(match v {
        Value::Str(s) => Cow::Borrowed(s.as_bytes()),
        Value::Bytes(b) => Cow::Borrowed(b.as_slice()),
        Value::Int(i) => Cow::Owned(i.to_string().into_bytes()),
        Value::Float(f) => Cow::Owned(format_float_f(*f).into_bytes()),
        Value::Bool(b) => Cow::Borrowed(if *b { b"True" } else { b"False" }),
        Value::Time(t) => Cow::Owned(format_time(t).into_bytes()),
        Value::Null | Value::Map(_) | Value::Seq(_) => return None,
    })
}

/// The text the flat stores (dotenv, INI) write for a leaf: [`to_bytes`],
/// except that booleans are `true`/`false`, as sops prints them.
pub fn to_text(v: &Value) -> Option<std::borrow::Cow<'_, [u8]>> {
    match v {
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b {
            b"true"
        } else {
            b"false"
        })),
        other => to_bytes(other),
    }
}

/// The `type:` tag sops writes for a leaf.
pub fn type_tag(v: &Value) -> &'static str {
    match v {
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Bool(_) => "bool",
        Value::Time(_) => "time",
        _ => "str",
    }
}

/// Parses decrypted bytes back into a typed value (`aes/cipher.go` `Decrypt`).
pub fn from_typed_bytes(bytes: Vec<u8>, typ: &str) -> Result<Value, String> {
    let text =
        || String::from_utf8(bytes.clone()).map_err(|_| format!("type:{typ} payload is not UTF-8"));
    match typ {
        "str" | "comment" => Ok(match String::from_utf8(bytes) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        }),
        "bytes" => Ok(Value::Bytes(bytes)),
        "int" => go_atoi(&text()?)
            .map(Value::Int)
            .ok_or_else(|| "type:int payload is not an integer".into()),
        "float" => go_parse_float(&text()?)
            .map(Value::Float)
            .ok_or_else(|| "type:float payload is not a number".into()),
        "bool" => go_parse_bool(&text()?)
            .map(Value::Bool)
            .ok_or_else(|| "type:bool payload is not a boolean".into()),
        "time" => parse_rfc3339(&text()?)
            .map(Value::Time)
            .ok_or_else(|| "type:time payload is not an RFC 3339 time".into()),
        other => Err(format!("unknown datatype {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_v3_resolution_matches_the_spec_examples() {
        assert_eq!(resolve_plain("0x1F"), Some(Value::Int(31)));
        assert_eq!(resolve_plain("1_000"), Some(Value::Int(1000)));
        assert_eq!(resolve_plain("017"), Some(Value::Int(15)));
        assert_eq!(resolve_plain("0o17"), Some(Value::Int(15)));
        assert_eq!(resolve_plain("-0b101"), Some(Value::Int(-5)));
        assert_eq!(resolve_plain("1.50"), Some(Value::Float(1.5)));
        assert_eq!(resolve_plain("1e3"), Some(Value::Float(1000.0)));
        assert_eq!(resolve_plain("yes"), Some(Value::Str("yes".into())));
        assert_eq!(resolve_plain("~"), Some(Value::Null));
        assert_eq!(resolve_plain("18446744073709551615"), None);
        assert_eq!(resolve_plain("1.2.3"), Some(Value::Str("1.2.3".into())));
        let t = resolve_plain("2024-01-01").unwrap();
        assert_eq!(to_bytes(&t).unwrap().as_ref(), b"2024-01-01T00:00:00Z");
        let t = resolve_plain("2006-01-02T15:04:05.5+07:06").unwrap();
        assert_eq!(
            to_bytes(&t).unwrap().as_ref(),
            b"2006-01-02T15:04:05.5+07:06"
        );
        assert_eq!(
            to_bytes(&resolve_plain(".inf").unwrap()).unwrap().as_ref(),
            b"+Inf"
        );
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(1.0), "1");
        assert_eq!(format_float_f(-0.0), "-0");
        assert_eq!(format_float_f(1234568000.0), "1234568000");
        assert_eq!(format_float_f(25.4), "25.4");
    }

    #[test]
    fn flat_text_is_sops_val_to_string() {
        let t = resolve_plain("2024-01-02T03:04:05.5Z").unwrap();
        for (v, want) in [
            (Value::Bool(true), "true"),
            (Value::Float(1.0), "1.0"),
            (Value::Float(-0.0), "-0.0"),
            (Value::Float(2.5), "2.5"),
            (Value::Float(1e21), "1E+21"),
            (Value::Float(1.5e-7), "1.5E-07"),
            (Value::Float(f64::INFINITY), "+Inf"),
            (Value::Null, "<nil>"),
            (Value::Int(5), "5"),
            (t, "2024-01-02T03:04:05Z"),
        ] {
            assert_eq!(flat_text(&v).unwrap(), want, "{v:?}");
        }
    }

    #[test]
    fn go_float_g_formatting() {
        for (v, want) in [
            (1.0, "1"),
            (1e3, "1000"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e21, "1e+21"),
            (1234568000.0, "1.234568e+09"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.5e10, "-1.5e+10"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
        ] {
            assert_eq!(format_float_g(v), want, "{v:?}");
        }
    }
}
