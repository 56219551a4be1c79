//! CSRF tokens: every form that changes something carries one, and a POST
//! whose token is missing or wrong gets 403 before anything else is read.
//!
//! Signed in, the token is the session's own (kept with it in the store,
//! the synchronizer pattern). Before signing in (the sign-in forms) it is
//! a random value in a `SameSite=Strict` cookie that the form repeats
//! (double submit), so another site cannot sign a browser in as someone
//! else.

/// Whether the form's token is the expected one. Compared in constant time
/// for equal lengths, so the answer's timing does not spell the token.
pub fn matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented else {
        return false;
    };
    if expected.is_empty() || expected.len() != presented.len() {
        return false;
    }
    expected
        .bytes()
        .zip(presented.bytes())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abcd", Some("abcd")));
        assert!(!matches("abcd", Some("abce")));
        assert!(!matches("abcd", Some("abc")));
        assert!(!matches("abcd", None));
        assert!(!matches("", Some("")));
    }
}
