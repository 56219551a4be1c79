//! `handoff pairing-identity install|show`: putting the pairing identity a
//! user was issued where `pair`, `claim` and the daemon read it, and saying what is
//! there.
//!
//! A real processor's pairing port only answers a client whose certificate
//! comes from the vendor's pairing authority. handoff ships no such key
//! (DESIGN.md): the user brings one — files they were issued, or the
//! identity an installed pylutron-caseta package carries on their machine,
//! found at run time. Key material is never printed: messages name files,
//! certificates' subjects and fingerprints only.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::CliError;
use crate::cli::output::outln;
use crate::identity::install::{
    self, CertificateFacts, INSTALLED_NAMES, IdentityPems, Installed, human_time, rfc3339,
};
use crate::identity::{PAIRING_IDENTITY_DIR, PairingIdentity};

#[derive(Args, Debug)]
pub struct PairingIdentityArgs {
    #[command(subcommand)]
    pub action: PairingIdentityAction,
}

#[derive(Subcommand, Debug)]
pub enum PairingIdentityAction {
    /// Check a client key, certificate and CA you were issued, and install
    /// them where `pair`, `claim` and the daemon look (STATE_DIR/pairing-identity)
    Install(InstallArgs),
    /// Where the pairing identity is and what its certificate says: subject,
    /// issuer, validity, SHA-256 fingerprint (never the key)
    Show(ShowArgs),
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["dir", "from_pylutron_caseta"])))]
pub struct InstallArgs {
    /// Directory with client-key.pem, client-cert.pem and authority-ca.pem
    /// (or key.pem / client.key, cert.pem / client.crt, ca.pem / ca.crt)
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Use the client identity the pylutron-caseta package installed on
    /// this machine carries (found by running --python)
    #[arg(long)]
    pub from_pylutron_caseta: bool,
    /// The Python that has pylutron-caseta [default: python3]
    #[arg(long, value_name = "PYTHON", requires = "from_pylutron_caseta")]
    pub python: Option<PathBuf>,
    /// Replace a different identity already installed; the old one is kept
    /// beside it as pairing-identity.bak-<time>
    #[arg(long)]
    pub force: bool,
    /// Install here instead [default: STATE_DIR/pairing-identity]
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// JSON on stdout: where it was installed, the files, whether anything
    /// changed, and the certificate's subject and fingerprint
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The pairing identity's directory [default: STATE_DIR/pairing-identity]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// JSON on stdout: the directory, the files, the certificate's subject,
    /// issuer, validity and SHA-256 fingerprint (never key material)
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    args: PairingIdentityArgs,
    state_dir: Option<PathBuf>,
) -> Result<ExitCode, CliError> {
    match args.action {
        PairingIdentityAction::Install(args) => {
            let target = target_dir(args.to.clone(), state_dir)?;
            install_cmd(args, &target).await
        }
        PairingIdentityAction::Show(args) => {
            let dir = target_dir(args.dir.clone(), state_dir)?;
            show(&dir, args.json)
        }
    }
}

fn target_dir(dir: Option<PathBuf>, state_dir: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match (dir, state_dir) {
        (Some(dir), _) => Ok(dir),
        (None, Some(state)) => Ok(state.join(PAIRING_IDENTITY_DIR)),
        (None, None) => Err(CliError::Failed(
            "no state directory: set --state-dir, HOME or XDG_STATE_HOME".into(),
        )),
    }
}

async fn install_cmd(args: InstallArgs, target: &Path) -> Result<ExitCode, CliError> {
    let (pems, source) = match &args.dir {
        Some(dir) => {
            let pems = IdentityPems::read_dir(dir)?;
            warn_if_open(Path::new(&pems.sources[0]));
            (pems, dir.display().to_string())
        }
        None => {
            let python = args.python.clone().unwrap_or_else(|| "python3".into());
            from_pylutron_caseta(&python).await?
        }
    };
    let now = install::now_unix();
    let facts = pems.check(now)?;
    let outcome = install::install(&pems, target, args.force, now)?;
    // What claim will read: the same check it will make.
    PairingIdentity::load(target).map_err(|e| {
        CliError::Failed(format!(
            "installed in {}, but it cannot be read back: {e}",
            target.display()
        ))
    })?;
    if args.json {
        let (result, backup) = match &outcome {
            Installed::New => ("installed", None),
            Installed::Unchanged => ("unchanged", None),
            Installed::Replaced { backup } => ("replaced", Some(backup.display().to_string())),
        };
        print_json(&json!({
            "dir": target.display().to_string(),
            "result": result,
            "backup": backup,
            "source": source,
            "files": INSTALLED_NAMES,
            "certificate": facts_json(&facts, now),
        }))?;
    } else {
        match &outcome {
            Installed::New => outln!("installed the pairing identity in {}", target.display()),
            Installed::Unchanged => outln!(
                "the same pairing identity is already installed in {}: nothing changed",
                target.display()
            ),
            Installed::Replaced { backup } => outln!(
                "replaced the pairing identity in {}; the old one is kept in {}",
                target.display(),
                backup.display()
            ),
        }
        outln!("  from         {source}");
        print_facts(&facts);
    }
    Ok(ExitCode::SUCCESS)
}

/// A key file others may read has been exposed already: say so, once.
fn warn_if_open(key: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(key) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "note: {} is readable by others (mode {mode:04o}); the installed copy is 0600 — \
                 consider removing the original",
                key.display()
            );
        }
    }
}

fn show(dir: &Path, json: bool) -> Result<ExitCode, CliError> {
    let identity = PairingIdentity::load(dir).map_err(|e| {
        CliError::Failed(format!(
            "cannot use the pairing identity in {}: {e}",
            dir.display()
        ))
    })?;
    let now = install::now_unix();
    let facts = install::certificate_facts(&identity.identity.certificate_pem)?;
    let authorities = install::all_certificate_facts(&identity.authority_ca_pem)?;
    if json {
        print_json(&json!({
            "dir": dir.display().to_string(),
            "files": INSTALLED_NAMES,
            "certificate": facts_json(&facts, now),
            "authorities": authorities.iter().map(|a| facts_json(a, now)).collect::<Vec<_>>(),
        }))?;
    } else {
        outln!("pairing identity in {}", dir.display());
        outln!(
            "  files        {} (secret), {}, {}",
            INSTALLED_NAMES[0],
            INSTALLED_NAMES[1],
            INSTALLED_NAMES[2]
        );
        print_facts(&facts);
        if facts.not_after < now {
            outln!("  EXPIRED      processors will refuse it: install a current one");
        }
        for (i, a) in authorities.iter().enumerate() {
            outln!(
                "  {:<13}{} (SHA-256 {}, until {})",
                if i == 0 { "trusts" } else { "" },
                a.subject,
                a.sha256,
                human_time(a.not_after)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_facts(f: &CertificateFacts) {
    outln!("  certificate  {}", f.subject);
    outln!("  issued by    {}", f.issuer);
    outln!(
        "  valid        {} – {}",
        human_time(f.not_before),
        human_time(f.not_after)
    );
    outln!("  SHA-256      {}", f.sha256);
}

fn facts_json(f: &CertificateFacts, now: i64) -> Value {
    json!({
        "subject": f.subject,
        "issuer": f.issuer,
        "not_before": rfc3339(f.not_before),
        "not_after": rfc3339(f.not_after),
        "expired": f.not_after < now,
        "sha256": f.sha256,
    })
}

fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot encode JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Finds the pylutron-caseta package `python` imports, without importing
/// it: its directory and version, as JSON on one line.
const FIND_PACKAGE: &str = r#"
import json, sys, importlib.util
out = {"python": sys.executable}
try:
    spec = importlib.util.find_spec("pylutron_caseta")
except Exception:
    spec = None
if spec is None or not spec.submodule_search_locations:
    out["found"] = False
else:
    out["found"] = True
    out["dir"] = list(spec.submodule_search_locations)[0]
    try:
        from importlib.metadata import version
        out["version"] = version("pylutron-caseta")
    except Exception:
        out["version"] = None
print(json.dumps(out))
"#;

/// What pylutron-caseta keeps in `assets.py` (0.30.1): the client key and
/// certificate it presents on a processor's pairing port, the CA it checks
/// Caséta bridges against, and the root it falls back to for RadioRA 3.
const LAP_KEY: &str = "LAP_KEY_PEM";
const LAP_CERT: &str = "LAP_CERT_PEM";
const LAP_CA: &str = "LAP_CA_PEM";
const LUTRON_ROOT: &str = "LUTRON_ROOT_CA_PEM";

/// The identity the pylutron-caseta package of `python` carries, and a
/// description of where it came from.
async fn from_pylutron_caseta(python: &Path) -> Result<(IdentityPems, String), CliError> {
    let shown = python.display();
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-c", FIND_PACKAGE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(30), command.output()).await {
        Err(_) => {
            return Err(CliError::Failed(format!(
                "{shown} did not answer within 30s"
            )));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Failed(format!(
                "cannot run {shown}: not found; pass --python with the interpreter that has \
                 pylutron-caseta installed"
            )));
        }
        Ok(Err(e)) => return Err(CliError::Failed(format!("cannot run {shown}: {e}"))),
        Ok(Ok(output)) => output,
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(CliError::Failed(format!(
            "{shown} failed ({}): {}",
            output.status,
            stderr.trim().lines().last().unwrap_or("no message")
        )));
    }
    let found: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
        CliError::Failed(format!(
            "{shown} did not answer as Python 3 does: is it a Python 3 interpreter?"
        ))
    })?;
    if found["found"] != true {
        return Err(CliError::Failed(format!(
            "{} has no pylutron-caseta package: install it there (`{shown} -m pip install \
             pylutron-caseta`), or pass --python with the interpreter that has it",
            found["python"].as_str().unwrap_or(&shown.to_string())
        )));
    }
    let dir = PathBuf::from(found["dir"].as_str().unwrap_or_default());
    let version = found["version"].as_str().unwrap_or("(version unknown)");
    let assets = dir.join("assets.py");
    let package = format!("pylutron-caseta {version} in {}", dir.display());
    let text = std::fs::read_to_string(&assets).map_err(|e| {
        CliError::Failed(format!(
            "{package} has no readable assets.py ({e}): this version does not carry the \
             identity handoff knows how to find (0.30.1 keeps it there); install the files \
             you were issued with `handoff pairing-identity install DIR`"
        ))
    })?;
    let take = |name: &str| {
        python_pem(&text, name).ok_or_else(|| {
            CliError::Failed(format!(
                "{package} does not carry {name} in assets.py: no client identity to install \
                 from it (0.30.1 carries LAP_KEY_PEM, LAP_CERT_PEM and LAP_CA_PEM); install \
                 the files you were issued with `handoff pairing-identity install DIR`"
            ))
        })
    };
    let key = Zeroizing::new(take(LAP_KEY)?);
    let certificate = take(LAP_CERT)?;
    let mut authority_ca = take(LAP_CA)?;
    // RadioRA 3 processors answer with a certificate from lutron-root:
    // trusted too, as pylutron-caseta does when the first check fails.
    if let Some(root) = python_pem(&text, LUTRON_ROOT) {
        authority_ca.push_str(&root);
    }
    let at = |name: &str| format!("{} ({name})", assets.display());
    let pems = IdentityPems {
        key,
        certificate,
        authority_ca,
        sources: [at(LAP_KEY), at(LAP_CERT), at(LAP_CA)],
    };
    Ok((pems, package))
}

/// The PEM text assigned to `name` as a triple-quoted string at the start
/// of a line (`NAME = """-----BEGIN …"""`), trimmed, with a final newline.
fn python_pem(source: &str, name: &str) -> Option<String> {
    let prefix = format!("{name} = ");
    let start = source
        .match_indices(&prefix)
        .find(|(i, _)| *i == 0 || source.as_bytes()[i - 1] == b'\n')?
        .0
        + prefix.len();
    let rest = &source[start..];
    let quote = ["\"\"\"", "'''"]
        .into_iter()
        .find(|q| rest.starts_with(q))?;
    let body = &rest[quote.len()..];
    let text = body[..body.find(quote)?].trim();
    text.starts_with("-----BEGIN ").then(|| format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::python_pem;

    #[test]
    fn a_pem_is_taken_from_its_python_assignment_only() {
        let source = "\"\"\"Doc.\"\"\"\n\nA_PEM = \"\"\"-----BEGIN CERTIFICATE-----\nAAA\n\
                      -----END CERTIFICATE-----\n\"\"\"\n\nB_PEM = '''\n-----BEGIN X-----\nBB\n\
                      -----END X-----'''\nXA_PEM = \"\"\"not a pem\"\"\"\n";
        assert_eq!(
            python_pem(source, "A_PEM").as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
        );
        assert_eq!(
            python_pem(source, "B_PEM").as_deref(),
            Some("-----BEGIN X-----\nBB\n-----END X-----\n")
        );
        // XA_PEM is not A_PEM, and it holds no PEM.
        assert_eq!(python_pem(source, "XA_PEM"), None);
        assert_eq!(python_pem(source, "C_PEM"), None);
    }
}
