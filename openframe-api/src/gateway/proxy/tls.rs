//! The TLS policy of the tool proxy: certificates are always verified, against the public
//! Web PKI roots and/or the configured private root CAs. There is no "accept invalid
//! certificates" switch.

use std::sync::Arc;

use openframe_core::{Error, Result};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::gateway::ToolProxyConfig;

/// The rustls client configuration for HTTP and WebSocket calls to tools.
pub(super) fn client_config(config: &ToolProxyConfig) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if config.use_public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut pems: Vec<Vec<u8>> = config
        .extra_root_ca_pem
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    for path in &config.extra_root_ca_files {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::invalid(
                "tool_proxy.extra_root_ca_files",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        pems.push(bytes);
    }
    for pem in &pems {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| {
                Error::invalid("tool_proxy.extra_root_ca_pem", "not a PEM certificate")
            })?;
            roots.add(cert).map_err(|_| {
                Error::invalid(
                    "tool_proxy.extra_root_ca_pem",
                    "not a usable CA certificate",
                )
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::invalid(
                "tool_proxy.extra_root_ca_pem",
                "no certificate in the PEM text",
            ));
        }
    }
    if roots.is_empty() {
        return Err(Error::invalid(
            "tool_proxy",
            "no trusted root: enable the public roots or configure a root CA",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("tls setup: {e}").into()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}
