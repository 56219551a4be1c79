//! `handoff completions SHELL` and `handoff man`: generated from the same
//! clap definition as the parser, so they cannot drift from it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::output::print_stdout;
use super::{Cli, CliError};
use crate::atomic_file::{self, Readers};

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
    /// Write one page per command (handoff.1, handoff-discover.1…) into
    /// this directory instead of the main page to stdout
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
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
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
        let man = clap_mangen::Man::new(cmd);
        let mut page = Vec::new();
        man.render(&mut page)?;
        let path = dir.join(man.get_filename());
        atomic_file::write(&path, &page, Readers::Anyone)?;
        written.push(path);
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building gives subcommands their display names (handoff-discover).
    cmd.build();
    let mut written = Vec::new();
    walk(cmd, dir, &mut written)?;
    written.reverse();
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
                println!("{}", path.display());
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

    #[test]
    fn man_dir_gets_one_page_per_command() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("handoff.1"));
        for name in [
            "handoff-discover.1",
            "handoff-config-check.1",
            "handoff-sim.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let discover = std::fs::read_to_string(dir.path().join("handoff-discover.1")).unwrap();
        assert!(discover.contains(".TH handoff-discover 1"), "{discover}");
        assert!(discover.contains("liveness"));
    }
}
