//! Trust roots for every TLS connection the functions open: Mozilla's, bundled in the binary
//! (`webpki-root-certs`). Reading the OS store instead means opening and parsing a few hundred
//! files in every cold start, twice over (the SDK's client and the delivery client).

use std::sync::LazyLock;

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use base64::Engine as _;

/// The bundled roots as one PEM bundle (what the SDK's trust store takes).
static ROOTS_PEM: LazyLock<String> = LazyLock::new(|| {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = engine.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
});

/// The roots, for reqwest (`ClientBuilder::tls_certs_only`).
pub fn reqwest_roots() -> Vec<reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
        .collect()
}

/// The AWS SDK's HTTPS client (rustls with aws-lc, as the SDK's default) trusting only the
/// bundled roots.
pub fn sdk_http_client() -> SharedHttpClient {
    let builder = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(ROOTS_PEM.as_bytes().to_vec());
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Cannot happen with the bundled roots; the SDK's own defaults still work.
        Err(e) => {
            tracing::warn!(error = %e, "bundled trust roots refused; using the SDK's default TLS context");
            builder.build_https()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_root_is_in_both_forms() {
        let n = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert!(n > 100, "{n} roots");
        assert_eq!(ROOTS_PEM.matches("-----BEGIN CERTIFICATE-----").count(), n);
        assert_eq!(reqwest_roots().len(), n);
        assert!(
            TlsContext::builder()
                .with_trust_store(
                    TrustStore::empty().with_native_roots(false).with_pem_certificate(ROOTS_PEM.as_bytes().to_vec())
                )
                .build()
                .is_ok()
        );
    }
}
