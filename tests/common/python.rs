//! A Python interpreter with pinned packages, for tests that check handoff
//! against implementations nobody here wrote (python-zeroconf).
//!
//! [`python_with`] makes `<repo>/target/interop-venv` once: `python3 -m venv`
//! and `pip install` of the pinned packages. Tests run in parallel, so a
//! file lock makes one of them do the work while the others wait; a marker
//! file listing what was installed lets every later call return at once.
//!
//! pip needs the package registry, which a private network namespace cannot
//! reach: call [`python_with`] in the `#[test]` function *before*
//! [`super::in_private_lan`]. The re-run inside the namespace calls it again
//! and finds the marker.
//!
//! `HANDOFF_TEST_PYTHON=/path/to/python` uses a ready interpreter instead
//! (checked to have the pinned versions; nothing is installed into it).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Environment variable naming a ready interpreter to use instead of the venv.
pub const PYTHON_ENV: &str = "HANDOFF_TEST_PYTHON";

/// The marker, inside the venv: the installed requirements, one a line.
const MARKER: &str = "handoff-installed.txt";

/// The venv's python, with every `packages` requirement (`name==version`)
/// installed. Panics with the reason when python3, venv or pip fails: a
/// test that needs them must fail, not skip.
pub fn python_with(packages: &[&str]) -> PathBuf {
    if let Some(python) = std::env::var_os(PYTHON_ENV) {
        let python = PathBuf::from(python);
        check_versions(&python, packages);
        return python;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv");
    let python = venv.join("bin/python");
    let wanted: BTreeSet<String> = packages.iter().map(|p| p.to_string()).collect();
    if installed(&venv).is_superset(&wanted) {
        return python;
    }

    let lock_path = venv.with_extension("lock");
    std::fs::create_dir_all(venv.parent().unwrap()).expect("create the target directory");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    // Another test may have finished the install while this one waited.
    let have = installed(&venv);
    if have.is_superset(&wanted) {
        return python;
    }
    assert!(
        std::env::var_os(handoff::lan::PRIVATE_LAN_ENV).is_none(),
        "the Python venv {} lacks {wanted:?} and pip cannot reach the package \
         registry from a private network: call python_with() before in_private_lan()",
        venv.display()
    );

    // A venv with a marker is whole: add what is missing to it (each test
    // binary asks for its own packages; rebuilding the venv for each new
    // set cost CI a venv and every install again). Without a marker, start
    // from a clean venv: one left by an interrupted install may be half
    // made.
    let all: BTreeSet<String> = have.union(&wanted).cloned().collect();
    let missing: Vec<&String> = if have.is_empty() {
        let _ = std::fs::remove_file(venv.join(MARKER));
        run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            "python3 -m venv (is python3 with its venv module installed?)",
        );
        all.iter().collect()
    } else {
        wanted.difference(&have).collect()
    };
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(&missing),
        &format!(
            "pip install {} (is the package registry reachable?)",
            missing
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    check_versions(&python, packages);
    let text: String = all.iter().map(|p| format!("{p}\n")).collect();
    let tmp = venv.join(format!("{MARKER}.tmp"));
    std::fs::write(&tmp, text).expect("write the venv marker");
    std::fs::rename(&tmp, venv.join(MARKER)).expect("write the venv marker");
    drop(lock);
    python
}

/// The requirements the marker lists (none without a marker).
fn installed(venv: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(venv.join(MARKER))
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Panics unless `python` has each `name==version` installed.
fn check_versions(python: &Path, packages: &[&str]) {
    const SCRIPT: &str = "import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for req in sys.argv[1:]:
    name, _, want = req.partition('==')
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if want and have != want:
        bad.append(f'{name}: want {want}, have {have}')
print('; '.join(bad))
sys.exit(1 if bad else 0)
";
    let out = run_output(
        Command::new(python).args(["-c", SCRIPT]).args(packages),
        &format!("{} -c <check versions>", python.display()),
    );
    assert!(
        out.status.success(),
        "{} does not have the pinned packages: {}{}",
        python.display(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_output(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = run_output(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
