//! How `demo` shows its progress: one line per step, as it happens, with
//! colour only when the output is a terminal.

use std::io::{self, Write};
use std::time::Duration;

use proxy_delegate_core::resolver::{Route, Source};
use tokio::time::Instant;

/// ANSI colours (used only on a terminal).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Colour {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Bold => "1",
            Colour::Dim => "2",
            Colour::Red => "31",
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Blue => "34",
            Colour::Magenta => "35",
            Colour::Cyan => "36",
        }
    }

    /// The colour of a route's source.
    pub(crate) fn of(source: Source) -> Self {
        match source {
            Source::Service => Colour::Green,
            Source::Cache => Colour::Cyan,
            Source::Stale => Colour::Yellow,
            Source::Embedded => Colour::Magenta,
            Source::Direct => Colour::Blue,
        }
    }
}

/// The progress printer. Every line is flushed as it is written.
pub(crate) struct Show<'w> {
    w: &'w mut dyn Write,
    colour: bool,
    /// What `+t` counts from (the phase's start, or its event).
    mark: Instant,
}

impl<'w> Show<'w> {
    pub(crate) fn new(w: &'w mut dyn Write, colour: bool) -> Self {
        Self {
            w,
            colour,
            mark: Instant::now(),
        }
    }

    /// `+t` counts from now on.
    pub(crate) fn mark(&mut self) {
        self.mark = Instant::now();
    }

    pub(crate) fn paint(&self, colour: Colour, text: &str) -> String {
        if self.colour {
            format!("\x1b[{}m{text}\x1b[0m", colour.code())
        } else {
            text.to_owned()
        }
    }

    /// One line, as it is, flushed.
    pub(crate) fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.w, "{text}")?;
        self.w.flush()
    }

    /// A phase's header: `Phase n/5: title`, after a blank line.
    pub(crate) fn phase(&mut self, n: u8, title: &str) -> io::Result<()> {
        self.mark();
        let header = self.paint(Colour::Bold, &format!("Phase {n}/5: {title}"));
        self.line("")?;
        self.line(&header)
    }

    /// An indented line with `+t` in front.
    pub(crate) fn step(&mut self, text: &str) -> io::Result<()> {
        let t = self.paint(Colour::Dim, &format!("{:>+8.3}s", self.since_mark()));
        self.line(&format!("  {t}  {text}"))
    }

    /// An indented note (no time).
    pub(crate) fn note(&mut self, text: &str) -> io::Result<()> {
        let text = self.paint(Colour::Dim, text);
        self.line(&format!("  {text}"))
    }

    pub(crate) fn since_mark(&self) -> f64 {
        self.mark.elapsed().as_secs_f64()
    }

    /// The writer itself (for the summary's own lines).
    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        self.w
    }

    /// `exchange  source  proxy-id  url`, coloured by source.
    pub(crate) fn route(&self, exchange: &str, route: &Route) -> String {
        let source = self.paint(
            Colour::of(route.source),
            &format!("{:<8}", route.source.as_str()),
        );
        format!("{exchange:<9} {source}  {}", proxy_text(route))
    }
}

/// `id  url` of a route's proxy (password as `***`), or `direct`.
pub(crate) fn proxy_text(route: &Route) -> String {
    match (&route.proxy_url, &route.proxy_id) {
        (Some(url), Some(id)) => format!("{:<10}  {url}", id.as_str()),
        (Some(url), None) => format!("{:<10}  {url}", "(config)"),
        (None, _) => format!("{:<10}  no proxy", "direct"),
    }
}

/// A duration in milliseconds, e.g. `1.93 ms`.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
