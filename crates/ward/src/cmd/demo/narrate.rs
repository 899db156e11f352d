//! How the demo talks: numbered scenes, one line per thing that happened,
//! Ward's decision next to it. Colour only on a terminal and without
//! `NO_COLOR` (https://no-color.org); pauses only in interactive mode.

use std::time::Duration;

/// Pause between scenes in interactive mode: long enough to read the
/// scene's last lines, short enough that nobody waits.
const PAUSE: Duration = Duration::from_millis(700);

/// Where scene descriptions wrap.
const WIDTH: usize = 92;

/// ANSI styles.
#[derive(Debug, Clone, Copy)]
pub(super) enum Style {
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Self::Bold => "1",
            Self::Dim => "2",
            Self::Green => "32",
            Self::Red => "31",
            Self::Yellow => "33",
            Self::Cyan => "36",
        }
    }
}

/// Writes the narration to standard output.
#[derive(Debug, Clone, Copy)]
pub(super) struct Narrator {
    colour: bool,
    interactive: bool,
}

impl Narrator {
    /// `colour`: stdout is a terminal and `NO_COLOR` is unset (decided by
    /// the caller, once).
    pub(super) fn new(colour: bool, interactive: bool) -> Self {
        Self {
            colour,
            interactive,
        }
    }

    /// `text` in `style` (plain without colour).
    pub(super) fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_owned()
        }
    }

    /// The demo's title.
    pub(super) fn title(&self, text: &str) {
        println!("{}", self.paint(Style::Bold, text));
    }

    /// A section heading: `n/total title`, then what it shows.
    pub(super) fn scene(&self, number: &str, title: &str, what: &str) {
        println!();
        println!(
            "{} {}",
            self.paint(Style::Cyan, &format!("[{number}]")),
            self.paint(Style::Bold, title)
        );
        for line in wrap(what, WIDTH) {
            println!("    {}", self.paint(Style::Dim, &line));
        }
    }

    /// Something the demo does.
    pub(super) fn step(&self, text: &str) {
        println!("  → {text}");
    }

    /// A fact, indented under the step.
    pub(super) fn fact(&self, key: &str, value: &str) {
        println!(
            "      {} {value}",
            self.paint(Style::Dim, &format!("{key:<9}"))
        );
    }

    /// Ward (or the demo's check) says yes, as expected.
    pub(super) fn good(&self, text: &str) {
        println!("  {} {text}", self.paint(Style::Green, "✓"));
    }

    /// Ward refused, as expected: the point of the scene, not a failure.
    pub(super) fn refused(&self, text: &str) {
        println!("  {} {text}", self.paint(Style::Yellow, "⛔"));
    }

    /// Something did not go as the scene expects.
    pub(super) fn bad(&self, text: &str) {
        println!("  {} {text}", self.paint(Style::Red, "✗"));
    }

    /// A line as it is.
    pub(super) fn line(&self, text: &str) {
        println!("{text}");
    }

    /// Lets a human catch up between scenes (interactive mode only; never
    /// waits for input).
    pub(super) async fn pause(&self) {
        if self.interactive {
            tokio::time::sleep(PAUSE).await;
        }
    }
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_between_words() {
        assert_eq!(wrap("a bb ccc dd", 6), ["a bb", "ccc dd"]);
        assert_eq!(wrap("  ", 6), Vec::<String>::new());
        assert_eq!(wrap("longerthanwidth x", 4), ["longerthanwidth", "x"]);
    }
}
