//! What the client port checks, from files, reloadable without a restart (SIGHUP): the users
//! (`--password-file`, `--users-file`) and the TLS certificate. A reload that fails keeps what
//! was in force; connections already open keep what they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use replica::users::{Users, UsersError};
use tokio_rustls::TlsAcceptor;

use crate::tls::{self, TlsError, TlsFiles};

/// Where the secrets are.
#[derive(Clone, Debug, Default)]
pub struct SecretFiles {
    pub password_file: Option<PathBuf>,
    pub users_file: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the password or users file: {0}")]
    Users(#[from] UsersError),
    #[error("client TLS: {0}")]
    Tls(#[from] TlsError),
}

/// The secrets in force.
#[derive(Clone)]
pub struct Current {
    pub users: Arc<Users>,
    pub tls: Option<TlsAcceptor>,
}

pub struct Secrets {
    files: SecretFiles,
    current: RwLock<Current>,
}

fn read(path: Option<&Path>) -> Result<Option<String>, SecretsError> {
    path.map(|path| std::fs::read_to_string(path).map_err(|source| SecretsError::Read { path: path.to_path_buf(), source })).transpose()
}

fn load(files: &SecretFiles) -> Result<Current, SecretsError> {
    let (password, users) = (read(files.password_file.as_deref())?, read(files.users_file.as_deref())?);
    let users = Arc::new(Users::parse(password.as_deref(), users.as_deref())?);
    let tls = files.tls.as_ref().map(tls::acceptor).transpose()?;
    Ok(Current { users, tls })
}

impl Secrets {
    pub fn load(files: SecretFiles) -> Result<Secrets, SecretsError> {
        let current = RwLock::new(load(&files)?);
        Ok(Secrets { files, current })
    }

    pub fn current(&self) -> Current {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reads the files again; on an error, what was in force stays.
    pub fn reload(&self) -> Result<(), SecretsError> {
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }
}
