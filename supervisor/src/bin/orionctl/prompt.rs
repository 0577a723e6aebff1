//! The interactive `orion>` prompt (no verb given, on a terminal): line editing and history
//! (kept in `~/.orionctl_history`), Tab completion of verbs and process names, `help`.
//! Piped input is read line by line instead, for scripts.

use std::path::PathBuf;

use clap::CommandFactory;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::Cli;

/// What Tab completes: a verb first, then process names (and `all`).
pub struct Words {
    verbs: Vec<String>,
    names: Vec<String>,
}

impl Words {
    pub fn new() -> Self {
        let mut verbs: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        verbs.extend(["help", "quit"].map(String::from));
        verbs.sort();
        let mut names: Vec<String> = orion_protocol::ProcessName::START_ORDER
            .iter()
            .map(ToString::to_string)
            .collect();
        names.push("all".into());
        Self { verbs, names }
    }

    /// Candidates for the word ending at `pos`, and where that word starts.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let pool = if before[..start].trim().is_empty() {
            &self.verbs
        } else {
            &self.names
        };
        let found = pool
            .iter()
            .filter(|c| c.starts_with(word))
            .cloned()
            .collect();
        (start, found)
    }
}

impl Completer for Words {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for Words {
    type Hint = String;
}
impl Highlighter for Words {}
impl Validator for Words {}
impl Helper for Words {}

/// The verbs with their one-line help.
pub fn help() -> String {
    let mut out = String::from("verbs (Tab completes verbs and process names):\n");
    for c in Cli::command().get_subcommands() {
        let about = c.get_about().map(ToString::to_string).unwrap_or_default();
        out.push_str(&format!("  {:<10} {about}\n", c.get_name()));
    }
    out.push_str("  help       this list; `VERB --help` for one verb\n");
    out.push_str("  quit       leave (also Ctrl-D)\n");
    out
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".orionctl_history"))
}

/// Reads lines at `orion> ` until quit or end of input; `run` carries each one out.
pub fn interactive(mut run: impl FnMut(&str)) -> rustyline::Result<()> {
    let mut editor: Editor<Words, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(Words::new()));
    let history = history_file();
    if let Some(h) = &history {
        // No history yet is fine.
        let _ = editor.load_history(h);
    }
    loop {
        match editor.readline("orion> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                match line {
                    "quit" | "exit" => break,
                    "help" | "?" => print!("{}", help()),
                    _ => run(line),
                }
            }
            // Ctrl-C clears the line, as in a shell; Ctrl-D leaves.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_first_then_process_names() {
        let w = Words::new();
        assert_eq!(
            w.candidates("sta", 3),
            (0, vec!["start".into(), "status".into()])
        );
        assert_eq!(w.candidates("he", 2), (0, vec!["help".into()]));
        assert_eq!(w.candidates("restart de", 10), (8, vec!["detector".into()]));
        let (_, all) = w.candidates("stop ", 5);
        assert!(all.contains(&"capture".to_string()) && all.contains(&"all".to_string()));
        assert!(help().contains("status") && help().contains("rois"));
    }
}
