//! `raftkv certs`: a certificate authority and certificates for a cluster, so that TLS is a
//! command away. Writes PEM files: the CA (`ca.pem`, `ca-key.pem`), one certificate per node
//! (`node-<id>.pem`, `node-<id>-key.pem`, valid for `node-<id>` and the hosts given), and one for
//! clients (`client.pem`, `client-key.pem`). Keys are written readable by their owner only.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

/// Writes a random password (32 hex digits, from std's randomly keyed hasher) to `path`, readable
/// by its owner only, unless the file is there already.
pub fn password_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    use std::hash::{BuildHasher, Hasher};
    let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|name| name.to_str()).context("a password file name")?;
    write(dir, name, &format!("{:016x}{:016x}\n", random(), random()), true)
}

/// Writes a CA and certificates for nodes 1..=`nodes` (valid for `hosts` too) and for a client.
pub fn make(dir: &Path, nodes: u64, hosts: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key = KeyPair::generate().context("a key for the CA")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("the CA's parameters")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = named("raftkv cluster CA");
    let ca = ca_params.self_signed(&ca_key).context("signing the CA")?;
    write(dir, "ca.pem", &ca.pem(), false)?;
    write(dir, "ca-key.pem", &ca_key.serialize_pem(), true)?;
    let mut subjects: Vec<(String, Vec<String>)> =
        (1..=nodes).map(|id| (format!("node-{id}"), std::iter::once(format!("node-{id}")).chain(hosts.iter().cloned()).collect())).collect();
    subjects.push(("client".to_string(), vec!["client".to_string()]));
    for (name, names) in subjects {
        let key = KeyPair::generate().with_context(|| format!("a key for {name}"))?;
        let mut params = CertificateParams::new(names).with_context(|| format!("{name}'s parameters"))?;
        params.distinguished_name = named(&name);
        let certificate = params.signed_by(&key, &ca, &ca_key).with_context(|| format!("signing {name}"))?;
        write(dir, &format!("{name}.pem"), &certificate.pem(), false)?;
        write(dir, &format!("{name}-key.pem"), &key.serialize_pem(), true)?;
    }
    Ok(())
}
