//! Why a connection to the control plane failed, in words: tonic's own message is only
//! "transport error", and the reason (a refused certificate, say) is several causes deep.

use std::error::Error;

/// `error` and each of its causes, outermost first, with a hint when a certificate was refused.
pub(crate) fn explain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut refused_certificate = false;
    let mut next = Some(error);
    while let Some(current) = next {
        refused_certificate |= is_certificate_error(current);
        next = current.source();
        // Wrappers often display their cause as their own message: say it once.
        if let Some(cause) = next.map(ToString::to_string)
            && cause != last
        {
            text.push_str(": ");
            text.push_str(&cause);
            last = cause;
        }
    }
    if refused_certificate {
        text.push_str(
            " (is --discovery-root-cert the mesh root that signed the control plane's \
             certificate, and the address's host or --discovery-server-name a name in it?)",
        );
    }
    text
}

/// Whether `error` is rustls refusing the peer's certificate (possibly inside an I/O error).
fn is_certificate_error(error: &(dyn Error + 'static)) -> bool {
    let inner = match error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => inner as &(dyn Error + 'static),
        None => error,
    };
    matches!(
        inner.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that displays as `message` and has `source` as its cause.
    #[derive(Debug)]
    struct Wrapper(&'static str, Option<std::io::Error>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_ref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_are_told_once_each_with_a_hint_for_a_refused_certificate() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        let text = explain(&Wrapper("transport error", Some(io)));
        assert!(
            text.starts_with(
                "transport error: invalid peer certificate: UnknownIssuer (is --discovery-root-cert"
            ),
            "{text}"
        );
        let refused_connection = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = explain(&Wrapper("transport error", Some(refused_connection)));
        assert_eq!(text, "transport error: connection refused");
    }
}
