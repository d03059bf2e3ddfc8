//! How an error reads where it becomes a message (a script error, a printed
//! line, the binary's last word): with its causes, on one line. The one way
//! vprobe shows a chain; its own module so that every error module can use it.

use std::error::Error;

/// `what: why: cause`: the error, then each of its sources.
pub fn with_causes(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The name a message suggests: house style writes every suggestion as
/// "did you mean `NAME`?", so this is that `NAME` (the last one).
pub fn suggestion(message: &str) -> Option<&str> {
    let (_, rest) = message.rsplit_once("did you mean `")?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_error() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(with_causes(&e), "outer: inner");
        assert_eq!(with_causes(&std::io::Error::other("alone")), "alone");
    }

    #[test]
    fn the_suggestion_is_the_did_you_mean() {
        assert_eq!(
            suggestion("unknown probe `skb.dorp`; did you mean `skb.drop`?"),
            Some("skb.drop")
        );
        assert_eq!(suggestion("no such thing"), None);
    }
}
