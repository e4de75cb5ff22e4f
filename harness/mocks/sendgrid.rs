//! The email provider, SendGrid v3 style: `POST /v3/mail/send` (202, or its error body) and
//! `POST /v3/mail/batch` (a batch id for scheduled sends).

/// SendGrid's errors this mock answers with: `(reason, message, field)`.
pub(super) const ERRORS: [(&str, &str, Option<&str>); 3] = [
    (
        "invalid_email",
        "Does not contain a valid address.",
        Some("personalizations.0.to.0.email"),
    ),
    (
        "unauthorized",
        "The provided authorization grant is invalid, expired, or revoked",
        None,
    ),
    ("rate_limit", "too many requests", None),
];

/// `{"errors": [{"message", "field", "help"}]}`, SendGrid v3's error shape.
pub(crate) fn error_body(reason: &str) -> Option<serde_json::Value> {
    let (_, message, field) = ERRORS.into_iter().find(|(r, _, _)| *r == reason)?;
    Some(serde_json::json!({
        "errors": [{ "message": message, "field": field, "help": null }]
    }))
}

/// What SendGrid checks before accepting a message: every recipient address has a local part
/// and a dotted domain. The booking service checks less, so this is where a bad address
/// surfaces, as it does in production.
pub(crate) fn invalid_recipient(body: &[u8]) -> bool {
    let Ok(mail) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let Some(personalizations) = mail["personalizations"].as_array() else {
        return false;
    };
    personalizations
        .iter()
        .filter_map(|p| p["to"].as_array())
        .flatten()
        .any(|to| !valid_address(to["email"].as_str().unwrap_or_default()))
}

fn valid_address(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(host, tld)| !host.is_empty() && tld.len() >= 2)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_without_a_dotted_domain_are_rejected() {
        for good in ["ann@example.com", "a.b@mail.example.org"] {
            assert!(valid_address(good), "{good}");
        }
        for bad in ["ann", "ann@", "@example.com", "ann@invalid", "a@b@c.com"] {
            assert!(!valid_address(bad), "{bad}");
        }
    }
}
