//! How `handoff cloud …` prints: one line (or one table) for people, one
//! JSON object with `--json`, and a refusal as the rule that spoke.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::output::outln;
use crate::cloud::Refusal;
pub(super) use crate::cloud::views::{
    place_json, remaining_json, remaining_text, role_text, source_text,
};

/// A refusal is the vendor's rule speaking: its own exit code (3), the
/// rule, and what to do.
pub(super) fn refused(refusal: &Refusal, json: bool) -> ExitCode {
    if json {
        outln!(
            "{}",
            json!({"result": "refused", "rule": refusal.rule(), "why": refusal.to_string(), "guidance": refusal.guidance()})
        );
    }
    eprintln!("refused: {refusal}");
    eprintln!("  (rule: {})", refusal.rule());
    ExitCode::from(3)
}

pub(super) fn print(json: bool, value: Value, human: impl FnOnce() -> String) -> ExitCode {
    if json {
        outln!("{value}");
    } else {
        outln!("{}", human());
    }
    ExitCode::SUCCESS
}
