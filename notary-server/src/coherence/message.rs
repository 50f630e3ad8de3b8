//! The messages of the read-lease protocol on the `notary_rs` notification channel: one type,
//! one printer ([`std::fmt::Display`]) and one parser ([`Message::parse`]). Instance IDs and
//! write tokens contain no space; a GUN may (it is last).

use std::fmt;

/// The notification channel every message goes through.
pub(crate) const CHANNEL: &str = "notary_rs";

/// A message on the `notary_rs` channel (Postgres LISTEN/NOTIFY), as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// `p <writer> <token> <gun>`: a write of `gun` is about to commit (invariant 2).
    Write {
        /// The writing instance.
        writer: &'a str,
        /// The write's token.
        token: &'a str,
        /// The repository.
        gun: &'a str,
    },
    /// `d <writer> <token> <gun>`: that write has a definite outcome (invariant 4).
    Done {
        /// The writing instance.
        writer: &'a str,
        /// The write's token.
        token: &'a str,
        /// The repository.
        gun: &'a str,
    },
    /// `a <token> <instance>`: `instance` marked the write's repository in flux (invariant 2).
    Ack {
        /// The write's token.
        token: &'a str,
        /// The acknowledging instance.
        instance: &'a str,
    },
    /// `h <instance> <seq>`: an instance's heartbeat to its own listener (invariant 1).
    Heartbeat {
        /// The instance.
        instance: &'a str,
        /// Its heartbeat's number.
        seq: u64,
    },
}

impl<'a> Message<'a> {
    /// The message of a notification payload (`None`: not one of ours, ignored).
    pub(crate) fn parse(payload: &'a str) -> Option<Message<'a>> {
        let mut p = payload.splitn(4, ' ');
        let m = match (p.next()?, p.next()?, p.next()?, p.next()) {
            ("p", writer, token, Some(gun)) => Message::Write { writer, token, gun },
            ("d", writer, token, Some(gun)) => Message::Done { writer, token, gun },
            ("a", token, instance, None) => Message::Ack { token, instance },
            ("h", instance, seq, None) => Message::Heartbeat {
                instance,
                seq: seq.parse().ok()?,
            },
            _ => return None,
        };
        Some(m)
    }
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Write { writer, token, gun } => write!(f, "p {writer} {token} {gun}"),
            Message::Done { writer, token, gun } => write!(f, "d {writer} {token} {gun}"),
            Message::Ack { token, instance } => write!(f, "a {token} {instance}"),
            Message::Heartbeat { instance, seq } => write!(f, "h {instance} {seq}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_parses_back_to_itself() {
        for m in [
            Message::Write {
                writer: "00ab",
                token: "00ab.7",
                gun: "docker.io/library/a b",
            },
            Message::Done {
                writer: "00ab",
                token: "00ab.7",
                gun: "g",
            },
            Message::Ack {
                token: "00ab.7",
                instance: "00cd",
            },
            Message::Heartbeat {
                instance: "00cd",
                seq: 42,
            },
        ] {
            let text = m.to_string();
            assert_eq!(Message::parse(&text), Some(m), "{text}");
        }
    }

    #[test]
    fn foreign_payloads_are_ignored() {
        for p in [
            "",
            "p",
            "p a b",
            "a t",
            "a t i extra",
            "h i notanumber",
            "x a b c",
        ] {
            assert_eq!(Message::parse(p), None, "{p:?}");
        }
    }
}
