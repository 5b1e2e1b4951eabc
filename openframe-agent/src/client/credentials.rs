//! The agent's credentials file: `{machineId, clientId, clientSecret}`, mode 0600, written
//! atomically.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use openframe_core::{Error, MachineId, Result, Secret};
use serde::{Deserialize, Serialize};

/// What a registration answers and the agent keeps: its machine id and OAuth client.
/// `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The machine id.
    pub machine_id: MachineId,
    /// The OAuth client id (`agent_{machineId}`).
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("machine_id", &self.machine_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

/// The file's (and the registration answer's) camelCase shape.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CredentialsFile {
    pub(crate) machine_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
}

impl CredentialsFile {
    pub(crate) fn into_credentials(self) -> Result<Credentials> {
        Ok(Credentials {
            machine_id: MachineId::parse(self.machine_id)?,
            client_id: self.client_id,
            client_secret: Secret::new(self.client_secret),
        })
    }
}

fn file_error(error: std::io::Error) -> Error {
    Error::backend("credentials-file", error)
}

/// Loads the credentials at `path`; `Ok(None)` when there is no file. A file that cannot be
/// parsed is `InvalidInput` on `credentialsFile` (it is never overwritten silently).
pub async fn load(path: &Path) -> Result<Option<Credentials>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || load_blocking(&path))
        .await
        .map_err(|_| Error::Internal("credentials loader panicked".into()))?
}

fn load_blocking(path: &Path) -> Result<Option<Credentials>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the credentials file is readable by other users; it should have mode 0600");
            }
        }
    }
    let file: CredentialsFile = serde_json::from_slice(&bytes)
        .map_err(|_| Error::invalid("credentialsFile", "is not a valid credentials file"))?;
    file.into_credentials()
        .map(Some)
        .map_err(|_| Error::invalid("credentialsFile", "holds an invalid machine id"))
}

/// Stores `credentials` at `path`: written to a new file created with mode 0600 next to it,
/// synced, then renamed over `path`, so a crash never leaves a partial file.
pub async fn store(path: &Path, credentials: &Credentials) -> Result<()> {
    let path = path.to_path_buf();
    let body = serde_json::to_vec_pretty(&CredentialsFile {
        machine_id: credentials.machine_id.to_string(),
        client_id: credentials.client_id.clone(),
        client_secret: credentials.client_secret.expose().to_owned(),
    })
    .map_err(|_| Error::Internal("credentials serialization failed".into()))?;
    tokio::task::spawn_blocking(move || store_blocking(&path, &body))
        .await
        .map_err(|_| Error::Internal("credentials writer panicked".into()))?
}

fn store_blocking(path: &Path, body: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(file_error)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "credentials".to_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename durable (best effort: not every platform can sync a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(file_error)
}
