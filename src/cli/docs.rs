//! `handoff completions SHELL` and `handoff man`: generated from the same
//! clap definition as the parser, so they cannot drift from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::output::print_stdout;
use super::{Cli, CliError};
use crate::atomic_file::{self, Readers};
use crate::cli::output::outln;

const BIN: &str = "handoff";

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for, e.g. `handoff completions bash >
    /// /usr/share/bash-completion/completions/handoff`
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (handoff.1, handoff-discover.1…, and
    /// handoffd.1) into this directory instead of the main page to stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut out);
    out
}

/// The main manual page, as roff.
///
/// # Errors
/// Only if rendering into memory fails.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    Ok(render(cmd)?.1)
}

/// One page: clap_mangen's sections, with EXAMPLES, EXIT STATUS and FILES
/// ([`super::manual`]) before VERSION, where man-pages(7) puts them.
/// Returns the file name and the page.
fn render(cmd: clap::Command) -> std::io::Result<(String, Vec<u8>)> {
    let has_options = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let has_version = cmd.get_version().is_some();
    let man = clap_mangen::Man::new(cmd);
    let filename = man.get_filename();
    let page = filename.strip_suffix(".1").unwrap_or(&filename);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if has_options {
        man.render_options_section(&mut out)?;
    }
    if has_subcommands {
        man.render_subcommands_section(&mut out)?;
    }
    out.extend_from_slice(super::manual::render(page).as_bytes());
    if has_version {
        man.render_version_section(&mut out)?;
    }
    Ok((filename, out))
}

/// Writes one page per command and subcommand into `dir`, each written
/// whole or not at all; returns the files written.
///
/// # Errors
/// The first file that cannot be written.
pub fn write_man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), dir, written)?;
        }
        let (filename, page) = render(cmd)?;
        let path = dir.join(filename);
        atomic_file::write(&path, &page, Readers::Anyone)?;
        written.push(path);
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building gives subcommands their display names (handoff-discover).
    cmd.build();
    let mut written = Vec::new();
    walk(cmd, dir, &mut written)?;
    written.reverse();
    // handoffd(1), the daemon alone: its own program, its own page.
    walk(super::daemon::DaemonCli::command(), dir, &mut written)?;
    Ok(written)
}

pub fn run_completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let script = String::from_utf8_lossy(&completions(args.shell)).into_owned();
    print_stdout(&script).map_err(CliError::io("cannot write to stdout"))?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_man(args: ManArgs) -> Result<ExitCode, CliError> {
    match args.dir {
        None => {
            let page = man_page().map_err(CliError::io("cannot render the manual page"))?;
            print_stdout(&String::from_utf8_lossy(&page))
                .map_err(CliError::io("cannot write to stdout"))?;
        }
        Some(dir) => {
            let written = write_man_pages(&dir).map_err(CliError::io(format!(
                "cannot write manual pages to {}",
                dir.display()
            )))?;
            for path in written {
                outln!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completions_offer_the_subcommands() {
        let script = String::from_utf8(completions(Shell::Bash)).unwrap();
        for name in [
            "discover",
            "claim",
            "release",
            "sim",
            "config",
            "completions",
            "man",
        ] {
            assert!(script.contains(name), "bash completions lack {name}");
        }
        assert!(
            script.contains("complete -F"),
            "not a bash completion script"
        );
    }

    #[test]
    fn other_shells_get_their_own_syntax() {
        let zsh = String::from_utf8(completions(Shell::Zsh)).unwrap();
        assert!(zsh.starts_with("#compdef handoff"), "{}", &zsh[..40]);
        let fish = String::from_utf8(completions(Shell::Fish)).unwrap();
        assert!(fish.contains("complete -c handoff"));
    }

    #[test]
    fn man_page_is_roff_for_handoff() {
        let page = String::from_utf8(man_page().unwrap()).unwrap();
        assert!(
            page.contains(".TH handoff 1"),
            "{}",
            &page[..200.min(page.len())]
        );
        assert!(page.contains("discover"));
    }

    /// Every command's `--json` says what it prints: a script's author
    /// reads `--help` to learn what to parse.
    #[test]
    fn every_json_flag_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_long() == Some("json") && arg.get_help().is_none() {
                    missing.push(path.to_owned());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "handoff", &mut missing);
        assert!(missing.is_empty(), "--json without help: {missing:?}");
    }

    #[test]
    fn pages_have_examples_exit_status_and_files() {
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        let top = String::from_utf8(man_page().unwrap()).unwrap();
        for name in ["claim", "discover", "status", "takeover", "daemon"] {
            let path = dir.path().join(format!("handoff-{name}.1"));
            let page = std::fs::read_to_string(&path).unwrap();
            for (what, page) in [(name, &page), ("handoff", &top)] {
                for section in [".SH EXAMPLES", ".SH \"EXIT STATUS\"", ".SH FILES"] {
                    assert!(page.contains(section), "{what}: no {section}\n{page}");
                }
                // Before VERSION, as man-pages(7) orders them.
                let files = page.find(".SH FILES").unwrap();
                assert!(page.find(".SH VERSION").is_none_or(|v| files < v), "{what}");
            }
            assert!(
                page.contains(&format!("\\fBhandoff {name}")),
                "{name}: {page}"
            );
        }
        // Every page has the exit codes, and a page's own meaning of a
        // code replaces the common one.
        let health = std::fs::read_to_string(dir.path().join("handoff-health.1")).unwrap();
        assert!(health.contains("The relay is stuck"), "{health}");
        assert_eq!(health.matches("\\fB2\\fR").count(), 1, "{health}");
        let sim = std::fs::read_to_string(dir.path().join("handoff-sim.1")).unwrap();
        assert!(sim.contains(".SH \"EXIT STATUS\""), "{sim}");
    }

    #[test]
    fn roff_text_escapes_what_roff_would_eat() {
        assert_eq!(
            super::super::manual::render("handoff-nothing")
                .matches(".TP")
                .count(),
            3
        );
        let page = super::super::manual::render("handoff");
        assert!(page.contains("\\-\\-state\\-dir"), "{page}");
        assert!(!page.lines().any(|l| l.starts_with("'")), "{page}");
    }

    #[test]
    fn man_dir_gets_one_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        // A directory not made yet is made (`handoff man --dir man1`).
        let written = write_man_pages(&dir.path().join("man1")).unwrap();
        let dir = dir.path().join("man1");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("handoff.1"));
        for name in [
            "handoff-discover.1",
            "handoff-config-check.1",
            "handoff-sim.1",
            "handoffd.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let discover = std::fs::read_to_string(dir.join("handoff-discover.1")).unwrap();
        assert!(discover.contains(".TH handoff-discover 1"), "{discover}");
        assert!(discover.contains("liveness"));
        let alone = std::fs::read_to_string(dir.join("handoffd.1")).unwrap();
        assert!(alone.contains(".TH handoffd 1"), "{alone}");
        assert!(
            alone.contains("liveness") && alone.contains("state\\-dir"),
            "{alone}"
        );
        assert!(alone.contains("handoffd \\-\\-interface eth0"), "{alone}");
    }
}
