//! Recovery codes: the ten single-use codes a user writes down when enrolling a second
//! factor, to sign in when the phone or the key is lost.
//!
//! A code is 12 characters of Crockford's base32 in lower case, shown as `xxxx-xxxx-xxxx`:
//! 60 random bits, no `i`, `l`, `o` or `u`, so nothing reads as another character, and what a
//! user types is forgiven its case, dashes and spaces, and `o`/`i`/`l` typed for `0`/`1`.
//! Codes are shown once and stored only as digests.
//!
//! Why a fast hash is enough: a slow hash (argon2id) protects passwords because people pick
//! guessable ones; these codes are uniformly random, so guessing one means searching 2^60
//! values, and an attacker online is stopped long before by rate limits. The digest also
//! binds the user's id, so an attacker who copied the database cannot test one guess against
//! every account's codes at once: each account costs about 2^56 SHA-256 evaluations (ten
//! codes of 60 bits), months of a GPU, and yields only a second factor, useless without that
//! user's password. A slow hash would cost the Worker tens of milliseconds per stored code
//! on every attempt, where the CPU budget per request is about ten.

use crate::domain::secret::sha256_hex;
use subtle::ConstantTimeEq;

/// Codes issued at a time.
pub const CODE_COUNT: usize = 10;
/// Random bytes consumed per code (60 of their 64 bits are used).
pub const RANDOM_BYTES_PER_CODE: usize = 8;
/// Random bytes [`generate`] takes.
pub const RANDOM_BYTES: usize = CODE_COUNT * RANDOM_BYTES_PER_CODE;
/// Characters in a code without its dashes: 12 × 5 = 60 bits.
pub const CODE_CHARS: usize = 12;

/// Crockford's base32 alphabet, lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Ten codes from caller-supplied CSPRNG bytes, formatted `xxxx-xxxx-xxxx` for display.
pub fn generate(random: &[u8; RANDOM_BYTES]) -> Vec<String> {
    random
        .chunks_exact(RANDOM_BYTES_PER_CODE)
        .map(|chunk| {
            let mut bytes = [0_u8; RANDOM_BYTES_PER_CODE];
            bytes.copy_from_slice(chunk);
            // The top 60 bits, five at a time.
            let value = u64::from_be_bytes(bytes) >> 4;
            let mut code = String::with_capacity(CODE_CHARS + 2);
            for index in 0..CODE_CHARS {
                if index > 0 && index % 4 == 0 {
                    code.push('-');
                }
                let shift = 5 * (CODE_CHARS - 1 - index);
                code.push(char::from(ALPHABET[((value >> shift) & 0x1f) as usize]));
            }
            code
        })
        .collect()
}

/// What a user typed, reduced to the 12 characters that were issued: lower case, dashes and
/// whitespace dropped, `o` read as `0` and `i`/`l` as `1` (Crockford's rule). `None` when
/// the result is not 12 characters of the alphabet.
pub fn normalize(input: &str) -> Option<String> {
    let mut code = String::with_capacity(CODE_CHARS);
    for character in input.chars() {
        let character = match character.to_ascii_lowercase() {
            '-' => continue,
            c if c.is_whitespace() => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        if code.len() == CODE_CHARS {
            return None;
        }
        code.push(character);
    }
    (code.len() == CODE_CHARS).then_some(code)
}

/// The digest stored for one of a user's codes: lower-case hex SHA-256 over a fixed label,
/// the user id and the normalized code. `None` when `code` is not a well-formed code.
pub fn digest(user_id: &str, code: &str) -> Option<String> {
    let code = normalize(code)?;
    Some(digest_normalized(user_id, &code))
}

fn digest_normalized(user_id: &str, normalized: &str) -> String {
    // The label keeps these digests apart from any other SHA-256 the service stores; the code
    // has a fixed length and comes last, so no two (user, code) pairs share an input.
    sha256_hex(format!("edge-auth recovery code v1\0{user_id}\0{normalized}").as_bytes())
}

/// Which stored digest, if any, the typed `code` matches: its index in `digests` (the
/// caller then deletes that one, so each code works once). Every digest is compared in
/// constant time and none is skipped, so timing does not reveal how far the list was read.
pub fn find(user_id: &str, code: &str, digests: &[String]) -> Option<usize> {
    let candidate = digest_normalized(user_id, &normalize(code)?);
    let mut found = None;
    for (index, stored) in digests.iter().enumerate() {
        let equal: bool = stored.as_bytes().ct_eq(candidate.as_bytes()).into();
        if equal && found.is_none() {
            found = Some(index);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "0b6f3c1e-5f7a-4d8e-9c21-3a5b7d9e1f20";

    fn random() -> [u8; RANDOM_BYTES] {
        let mut bytes = [0_u8; RANDOM_BYTES];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = (index as u8).wrapping_mul(37).wrapping_add(11);
        }
        bytes
    }

    #[test]
    fn ten_codes_in_groups_of_four_from_the_alphabet() {
        let codes = generate(&random());
        assert_eq!(codes.len(), CODE_COUNT);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3);
            assert!(groups.iter().all(|group| group.len() == 4));
            assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
            assert!(!code.contains(['i', 'l', 'o', 'u']));
            assert_eq!(normalize(code).unwrap(), code.replace('-', ""));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODE_COUNT);
    }

    #[test]
    fn the_encoding_uses_the_top_sixty_bits() {
        let mut bytes = [0_u8; RANDOM_BYTES];
        bytes[..8].copy_from_slice(&[0xff; 8]);
        // The next code's last byte is only its unused bottom bits.
        bytes[15] = 0x0f;
        let codes = generate(&bytes);
        assert_eq!(codes[0], "zzzz-zzzz-zzzz");
        assert_eq!(codes[1], "0000-0000-0000");
        bytes[8..16].copy_from_slice(&0x0123_4567_89ab_cdef_u64.to_be_bytes());
        // 0x0123456789abcde in 5-bit groups: 0 4 17 20 10 25 28 9 21 15 6 30.
        assert_eq!(generate(&bytes)[1], "04hm-asw9-nf6y");
    }

    #[test]
    fn normalization_forgives_case_dashes_spaces_and_look_alikes() {
        assert_eq!(normalize("abcd-efgh-jk10").as_deref(), Some("abcdefghjk10"));
        assert_eq!(normalize("ABCD EFGH JK10").as_deref(), Some("abcdefghjk10"));
        assert_eq!(normalize(" abcdefghjkIO ").as_deref(), Some("abcdefghjk10"));
        assert_eq!(normalize("abcd-efgh-jkLo").as_deref(), Some("abcdefghjk10"));
        assert_eq!(
            normalize("abcd\tefgh\njk10").as_deref(),
            Some("abcdefghjk10")
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in [
            "",
            "abcd-efgh-jk1",
            "abcd-efgh-jk100",
            "abcd-efgh-jku0", // u is not in the alphabet
            "abcd_efgh_jk10",
            "abcd-efgh-jk1é",
            "ａｂｃｄ-efgh-jk10",
            &"a".repeat(10_000),
        ] {
            assert_eq!(normalize(bad), None, "{bad:?}");
            assert_eq!(digest(USER, bad), None);
        }
    }

    #[test]
    fn a_typed_code_finds_its_digest_however_it_is_typed() {
        let codes = generate(&random());
        let digests: Vec<String> = codes.iter().map(|c| digest(USER, c).unwrap()).collect();
        assert_eq!(find(USER, &codes[3], &digests), Some(3));
        assert_eq!(find(USER, &codes[3].to_uppercase(), &digests), Some(3));
        assert_eq!(find(USER, &codes[9].replace('-', " "), &digests), Some(9));
        assert_eq!(find(USER, "zzzz-zzzz-zzzz", &digests), None);
        assert_eq!(find(USER, "not a code", &digests), None);
        assert_eq!(find(USER, &codes[0], &[]), None);
    }

    #[test]
    fn digests_are_bound_to_the_user() {
        let code = &generate(&random())[0];
        let mine = digest(USER, code).unwrap();
        assert_eq!(mine.len(), 64);
        assert_ne!(mine, digest("someone-else", code).unwrap());
        assert_eq!(
            find("someone-else", code, std::slice::from_ref(&mine)),
            None
        );
        // The plain digest of the code is not what is stored.
        assert_ne!(mine, sha256_hex(normalize(code).unwrap().as_bytes()));
    }
}
