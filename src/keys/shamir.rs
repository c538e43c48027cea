//! Shamir secret sharing over GF(2^8) exactly as sops does it: AES polynomial
//! 0x11B, one random polynomial per secret byte, the x-coordinate in the
//! share's last byte (1..N since sops 3.10).

use rand::RngCore;
use zeroize::Zeroizing;

fn mul(mut a: u8, mut b: u8) -> u8 {
    // Constant-time shift-and-add with reduction by 0x1B.
    let mut r = 0u8;
    for _ in 0..8 {
        r ^= a & (0u8.wrapping_sub(b & 1));
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1B & hi);
        b >>= 1;
    }
    r
}

fn inv(a: u8) -> u8 {
    // a^254
    let mut r = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    r
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    #[error("threshold must be between 2 and 255 (got {0})")]
    Threshold(usize),
    #[error("cannot make {parts} shares with threshold {threshold}")]
    Parts { parts: usize, threshold: usize },
    #[error("need at least {0} shares to combine")]
    TooFew(usize),
    #[error("shares have different lengths")]
    Lengths,
    #[error("two shares have the same x-coordinate")]
    DuplicateX,
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
pub fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    if !(2..=255).contains(&threshold) {
        return Err(ShamirError::Threshold(threshold));
    }
    if parts < threshold || parts > 255 {
        return Err(ShamirError::Parts { parts, threshold });
    }
    let mut shares: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|i| {
            Zeroizing::new({
                let mut v = vec![0u8; secret.len() + 1];
                v[secret.len()] = (i + 1) as u8;
                v
            })
        })
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for (byte_idx, &s) in secret.iter().enumerate() {
        coeffs[0] = s;
        rand::rngs::OsRng.fill_bytes(&mut coeffs[1..]);
        for share in shares.iter_mut() {
            let x = share[secret.len()];
            // Horner evaluation.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            share[byte_idx] = y;
        }
    }
    Ok(shares)
}

/// Lagrange interpolation at 0 over all given shares.
pub fn combine(parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if parts.len() < 2 {
        return Err(ShamirError::TooFew(2));
    }
    let len = parts[0].len();
    if len < 2 || parts.iter().any(|p| p.len() != len) {
        return Err(ShamirError::Lengths);
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    for i in 0..xs.len() {
        if xs[i + 1..].contains(&xs[i]) {
            return Err(ShamirError::DuplicateX);
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (idx, out) in secret.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (i, p) in parts.iter().enumerate() {
            // basis_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(xj, inv(xj ^ xs[i])));
                }
            }
            acc ^= mul(p[idx], basis);
        }
        *out = acc;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recovers() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 3, 2).unwrap();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            let got = combine(&[&shares[a], &shares[b]]).unwrap();
            assert_eq!(&got[..], &secret[..]);
        }
        let all = combine(&[&shares[0], &shares[1], &shares[2]]).unwrap();
        assert_eq!(&all[..], &secret[..]);
        assert_eq!(shares[2][32], 3);
    }

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(0x53, 0xCA), 0x01); // AES inverse pair
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1);
        }
    }
}
