//! Reads a rendered script as POSIX `sh` does, far enough to know the quoting context of each
//! value placeholder, and replaces it with the value quoted for that context.
//!
//! The lexer follows what decides how text is read: quotes (`'…'`, `"…"`, `$'…'`), command
//! substitutions (`$( )`, backquotes, `<( )`), parameter expansions (`${ }`), arithmetic
//! (`$(( ))`, `(( ))`), comments and here-documents. Where it cannot be sure a value stays data
//! (a `\` or `$` right before it, nested backquotes, a non-integer in arithmetic) the render
//! fails: a task that fails to render never runs.

use super::placeholder::{CLOSE, OPEN, decode};
use super::{ShellError, quote};

/// Where a value stands in a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A word outside quotes (also inside `$( )`, backquotes and unquoted `${ }`).
    Unquoted,
    Single,
    Double,
    /// Inside `"${x:-…}"`.
    DoubleBraces,
    DollarSingle,
    Arithmetic,
    Comment,
    /// The body of a here-document with an unquoted delimiter (`<<EOF`).
    Heredoc,
    /// The body of a here-document with a quoted delimiter (`<<'EOF'`): another program's
    /// source, where the value goes in as it is.
    QuotedHeredoc,
}

/// One value the lexer placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub context: Context,
    /// 1-based line of the script.
    pub line: usize,
    pub value: String,
    /// Inside backquotes.
    pub backquoted: bool,
}

/// Replaces every placeholder of `rendered` with its value quoted for where it stands.
pub fn substitute(rendered: &str) -> Result<String, ShellError> {
    let mut lexer = Lexer::new(rendered, true);
    lexer.run()?;
    if lexer.out.contains('\0') {
        return Err(ShellError::Nul { line: lexer.line });
    }
    Ok(lexer.out)
}

/// The context of every placeholder of `text`, for validation: problems that depend on the
/// value (a NUL, a non-integer) are not checked. Structural ones still are.
pub fn contexts(text: &str) -> Result<Vec<Placed>, ShellError> {
    let mut lexer = Lexer::new(text, false);
    lexer.run()?;
    Ok(lexer.placed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Paren,
    Backquote,
}

#[derive(Debug)]
struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
    quoted: bool,
}

#[derive(Debug)]
enum Frame {
    /// Commands: the script, `$( )`, `<( )`, backquotes.
    Code {
        end: End,
        parens: u32,
        /// Open `case` statements, whose patterns end in an unmatched `)`.
        cases: u32,
        /// Saw `` \` ``: a command substitution nested in this one.
        nested: bool,
        /// Up to this source position, words are evaluated as arithmetic: bash's
        /// `[[ a -eq b ]]` and `let`, which run `$(…)` in array subscripts of their operands.
        arith_until: Option<usize>,
    },
    Braces {
        quoted: bool,
    },
    Single,
    Double,
    DollarSingle,
    Arith {
        parens: u32,
    },
    Comment,
    Heredoc(Heredoc),
}

fn code(end: End) -> Frame {
    Frame::Code {
        end,
        parens: 0,
        cases: 0,
        nested: false,
        arith_until: None,
    }
}

/// Comparisons that make bash's `[[ ]]` evaluate both sides as arithmetic.
const ARITH_TESTS: &[&str] = &["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

struct Lexer {
    src: Vec<char>,
    pos: usize,
    out: String,
    stack: Vec<Frame>,
    pending: Vec<Heredoc>,
    line: usize,
    word_start: bool,
    line_start: bool,
    /// Output offset of the here-document line a value went into, checked at its end.
    dirty: Option<usize>,
    strict: bool,
    placed: Vec<Placed>,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn ends_word(c: char) -> bool {
    c.is_whitespace() || ";&|<>()".contains(c)
}

impl Lexer {
    fn new(text: &str, strict: bool) -> Self {
        Self {
            src: text.chars().collect(),
            pos: 0,
            out: String::with_capacity(text.len()),
            stack: vec![code(End::Eof)],
            pending: Vec::new(),
            line: 1,
            word_start: true,
            line_start: true,
            dirty: None,
            strict,
            placed: Vec::new(),
        }
    }

    fn peek(&self, n: usize) -> Option<char> {
        self.src.get(self.pos + n).copied()
    }

    fn at(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek(i) == Some(c))
    }

    /// Copies `n` characters to the output.
    fn copy(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(c) = self.peek(0) {
                self.out.push(c);
                self.pos += 1;
            }
        }
    }

    fn run(&mut self) -> Result<(), ShellError> {
        while let Some(c) = self.peek(0) {
            if c == CLOSE {
                return Err(ShellError::Mangled { line: self.line });
            }
            if c == OPEN {
                self.value()?;
                continue;
            }
            if c == '\n' {
                self.check_dirty()?;
                self.line += 1;
            }
            let was_line_start = std::mem::replace(&mut self.line_start, false);
            let Some(top) = self.stack.last() else {
                break;
            };
            match top {
                Frame::Code { .. } => self.code(c)?,
                Frame::Braces { quoted } => {
                    let quoted = *quoted;
                    self.braces(c, quoted)?;
                }
                Frame::Single => {
                    if c == '\'' {
                        self.stack.pop();
                    }
                    self.copy(1);
                }
                Frame::DollarSingle => match c {
                    '\\' => self.escape(2)?,
                    '\'' => {
                        self.stack.pop();
                        self.copy(1);
                    }
                    _ => self.copy(1),
                },
                Frame::Double => match c {
                    '\\' => self.escape(2)?,
                    '"' => {
                        self.stack.pop();
                        self.copy(1);
                    }
                    '`' => self.push_copy(code(End::Backquote), 1),
                    '$' => self.dollar(true)?,
                    _ => self.copy(1),
                },
                Frame::Arith { .. } => self.arith(c)?,
                Frame::Comment => {
                    if c == '\n' {
                        self.stack.pop();
                        // The newline ends the command line too.
                        self.line -= 1;
                        self.line_start = was_line_start;
                        continue;
                    }
                    self.copy(1);
                }
                Frame::Heredoc(h) => {
                    let quoted = h.quoted;
                    if was_line_start && self.delimiter_line() {
                        self.stack.pop();
                        self.line_start = true;
                        continue;
                    }
                    match c {
                        _ if quoted => self.copy(1),
                        '\\' => self.escape(2)?,
                        '`' => self.push_copy(code(End::Backquote), 1),
                        '$' => self.dollar(true)?,
                        _ => self.copy(1),
                    }
                }
            }
            if c == '\n' {
                self.line_start = true;
                self.word_start = true;
                self.start_heredocs();
            }
        }
        self.check_dirty()
    }

    /// After the newline that ends a command line, the pending here-documents' bodies follow,
    /// the first one first.
    fn start_heredocs(&mut self) {
        if self.pending.is_empty() || !matches!(self.stack.last(), Some(Frame::Code { .. })) {
            return;
        }
        for h in std::mem::take(&mut self.pending).into_iter().rev() {
            self.stack.push(Frame::Heredoc(h));
        }
    }

    /// At the start of a body line: copies it and says so when it is the delimiter.
    fn delimiter_line(&mut self) -> bool {
        let Some(Frame::Heredoc(h)) = self.stack.last() else {
            return false;
        };
        let rest = &self.src[self.pos..];
        let len = rest.iter().position(|&c| c == '\n').unwrap_or(rest.len());
        let line: String = rest[..len].iter().collect();
        let line = if h.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line.as_str()
        };
        if *line != h.delimiter {
            return false;
        }
        self.copy(len);
        if self.peek(0) == Some('\n') {
            self.copy(1);
            self.line += 1;
        }
        true
    }

    fn push_copy(&mut self, frame: Frame, n: usize) {
        // A command substitution starts with a command word.
        self.word_start = matches!(frame, Frame::Code { .. });
        self.stack.push(frame);
        self.copy(n);
    }

    /// A `\` and what it escapes; a value cannot be what it escapes.
    fn escape(&mut self, n: usize) -> Result<(), ShellError> {
        if self.peek(1) == Some(OPEN) {
            return Err(ShellError::Adjacent {
                what: "\\",
                line: self.line,
            });
        }
        if self.peek(1) == Some('\n') {
            self.line += 1;
        }
        self.copy(n);
        Ok(())
    }

    /// `$`: an expansion starts, or a plain dollar.
    fn dollar(&mut self, quoted: bool) -> Result<(), ShellError> {
        match self.peek(1) {
            Some(OPEN) => Err(ShellError::Adjacent {
                what: "$",
                line: self.line,
            }),
            Some('(') if self.peek(2) == Some('(') => {
                self.push_copy(Frame::Arith { parens: 0 }, 3);
                Ok(())
            }
            Some('(') => {
                self.push_copy(code(End::Paren), 2);
                Ok(())
            }
            Some('{') => {
                self.push_copy(Frame::Braces { quoted }, 2);
                Ok(())
            }
            Some('\'') if !quoted => {
                self.push_copy(Frame::DollarSingle, 2);
                Ok(())
            }
            _ => {
                self.copy(1);
                Ok(())
            }
        }
    }

    fn code(&mut self, c: char) -> Result<(), ShellError> {
        let word_start = std::mem::replace(&mut self.word_start, false);
        let Some(&Frame::Code {
            end, parens, cases, ..
        }) = self.stack.last()
        else {
            return Ok(());
        };
        match c {
            '\\' => {
                if end == End::Backquote
                    && self.peek(1) == Some('`')
                    && let Some(Frame::Code { nested, .. }) = self.stack.last_mut()
                {
                    *nested = true;
                }
                self.escape(2)?;
            }
            '\'' => self.push_copy(Frame::Single, 1),
            '"' => self.push_copy(Frame::Double, 1),
            '`' if end == End::Backquote => {
                self.stack.pop();
                self.copy(1);
            }
            '`' => self.push_copy(code(End::Backquote), 1),
            '$' => self.dollar(false)?,
            '#' if word_start => self.push_copy(Frame::Comment, 1),
            '<' if self.at("<<<") => {
                self.copy(3);
                self.word_start = true;
            }
            '<' if self.at("<<") => self.heredoc_operator()?,
            '<' | '>' if self.peek(1) == Some('(') => self.push_copy(code(End::Paren), 2),
            '(' if word_start && self.at("((") => self.push_copy(Frame::Arith { parens: 0 }, 2),
            '(' | ')' => {
                if c == ')' && end == End::Paren && parens == 0 && cases == 0 {
                    self.stack.pop();
                } else if let Some(Frame::Code { parens, .. }) = self.stack.last_mut() {
                    if c == '(' {
                        *parens += 1;
                    } else {
                        *parens = parens.saturating_sub(1);
                    }
                }
                self.copy(1);
                self.word_start = true;
            }
            _ if ends_word(c) => {
                self.copy(1);
                self.word_start = true;
            }
            _ => {
                if word_start {
                    let boundary = |n: usize| self.peek(n).is_none_or(ends_word);
                    let case = self.at("case") && boundary(4);
                    let esac = self.at("esac") && boundary(4);
                    let (arith, pos) = (self.arithmetic_words(), self.pos);
                    if let Some(Frame::Code { arith_until, .. }) = self.stack.last_mut()
                        && arith_until.is_none_or(|end| end < pos)
                    {
                        *arith_until = arith;
                    }
                    if let Some(Frame::Code { cases, .. }) = self.stack.last_mut() {
                        if case {
                            *cases += 1;
                        } else if esac {
                            *cases = cases.saturating_sub(1);
                        }
                    }
                }
                self.copy(1);
            }
        }
        Ok(())
    }

    /// At a command word: where the arithmetic operands of `[[ … -eq … ]]` or `let …` end.
    fn arithmetic_words(&self) -> Option<usize> {
        let rest: String = self.src[self.pos..].iter().collect();
        let boundary = |n: usize| rest[n..].chars().next().is_none_or(ends_word);
        if rest.starts_with("[[") && boundary(2) {
            let len = rest.find("]]")?;
            let words = rest[..len].split_whitespace();
            let chars = rest[..len].chars().count();
            return words
                .into_iter()
                .any(|w| ARITH_TESTS.contains(&w))
                .then_some(self.pos + chars);
        }
        if rest.starts_with("let") && boundary(3) {
            let len = rest.find(['\n', ';', '&', '|']).unwrap_or(rest.len());
            return Some(self.pos + rest[..len].chars().count());
        }
        None
    }

    fn braces(&mut self, c: char, quoted: bool) -> Result<(), ShellError> {
        match c {
            '}' => {
                self.stack.pop();
                self.copy(1);
            }
            '\\' => self.escape(2)?,
            '\'' if !quoted => self.push_copy(Frame::Single, 1),
            '"' => self.push_copy(Frame::Double, 1),
            '`' => self.push_copy(code(End::Backquote), 1),
            '$' => self.dollar(quoted)?,
            _ => self.copy(1),
        }
        Ok(())
    }

    fn arith(&mut self, c: char) -> Result<(), ShellError> {
        let close = self.peek(1) == Some(')');
        let Some(Frame::Arith { parens }) = self.stack.last_mut() else {
            return Ok(());
        };
        match c {
            '(' => {
                *parens += 1;
                self.copy(1);
            }
            ')' if *parens == 0 && close => {
                self.stack.pop();
                self.copy(2);
            }
            ')' => {
                *parens = parens.saturating_sub(1);
                self.copy(1);
            }
            '\\' => self.escape(2)?,
            '`' => self.push_copy(code(End::Backquote), 1),
            '$' => self.dollar(true)?,
            _ => self.copy(1),
        }
        Ok(())
    }

    /// `<<WORD` or `<<-WORD`: the body starts after the end of the line.
    fn heredoc_operator(&mut self) -> Result<(), ShellError> {
        self.copy(2);
        let strip_tabs = self.peek(0) == Some('-');
        if strip_tabs {
            self.copy(1);
        }
        while self.peek(0).is_some_and(is_blank) {
            self.copy(1);
        }
        let mut delimiter = String::new();
        let mut quoted = false;
        while let Some(c) = self.peek(0) {
            if ends_word(c) || c == OPEN {
                break;
            }
            match c {
                '\'' | '"' => {
                    quoted = true;
                    self.copy(1);
                    while let Some(q) = self.peek(0) {
                        if q == OPEN {
                            break;
                        }
                        self.copy(1);
                        if q == c {
                            break;
                        }
                        delimiter.push(q);
                    }
                }
                '\\' => {
                    quoted = true;
                    self.copy(1);
                    if let Some(e) = self.peek(0).filter(|&e| e != OPEN) {
                        delimiter.push(e);
                        self.copy(1);
                    }
                }
                _ => {
                    delimiter.push(c);
                    self.copy(1);
                }
            }
        }
        if self.peek(0) == Some(OPEN) {
            return Err(ShellError::InDelimiter { line: self.line });
        }
        self.pending.push(Heredoc {
            delimiter,
            strip_tabs,
            quoted,
        });
        Ok(())
    }

    fn context(&self) -> Context {
        match self.stack.last() {
            Some(Frame::Code {
                arith_until: Some(end),
                ..
            }) if self.pos <= *end => Context::Arithmetic,
            Some(Frame::Code { .. }) | None => Context::Unquoted,
            Some(Frame::Braces { quoted: false }) => Context::Unquoted,
            Some(Frame::Braces { quoted: true }) => Context::DoubleBraces,
            Some(Frame::Single) => Context::Single,
            Some(Frame::Double) => Context::Double,
            Some(Frame::DollarSingle) => Context::DollarSingle,
            Some(Frame::Arith { .. }) => Context::Arithmetic,
            Some(Frame::Comment) => Context::Comment,
            Some(Frame::Heredoc(h)) if h.quoted => Context::QuotedHeredoc,
            Some(Frame::Heredoc(_)) => Context::Heredoc,
        }
    }

    /// Replaces the placeholder at `pos` with its value, quoted for where it stands.
    fn value(&mut self) -> Result<(), ShellError> {
        let line = self.line;
        let rest = &self.src[self.pos + 1..];
        let len = rest
            .iter()
            .position(|&c| c == CLOSE)
            .ok_or(ShellError::Mangled { line })?;
        let hex: String = rest[..len].iter().collect();
        let value = decode(&hex).ok_or(ShellError::Mangled { line })?;
        self.pos += len + 2;
        if self.strict && value.contains('\0') {
            return Err(ShellError::Nul { line });
        }
        let context = self.context();
        let mut text = match context {
            Context::Unquoted => quote::unquoted(&value),
            Context::Single => quote::single(&value),
            Context::Double => quote::double(&value, false),
            Context::DoubleBraces => {
                // bash pairs `'` inside `"${…}"`, dash does not: no quoting means the same to both.
                // bash also reads `<(` and `>(` there as the start of a process substitution and
                // looks for its `)`, so an unbalanced one ends the script in a syntax error; a
                // backslash before it would stay in the value under every shell.
                if self.strict
                    && (value.contains('\'') || value.contains("<(") || value.contains(">("))
                {
                    return Err(ShellError::QuoteInBraces { line });
                }
                quote::double(&value, true)
            }
            Context::DollarSingle => {
                if self.strict && value.contains(['\'', '\\']) {
                    return Err(ShellError::DollarSingle { line });
                }
                value.clone()
            }
            Context::Arithmetic => {
                let digits = value.strip_prefix(['-', '+']).unwrap_or(&value);
                if self.strict && (digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()))
                {
                    return Err(ShellError::NotInteger { value, line });
                }
                value.clone()
            }
            Context::Comment => quote::comment(&value),
            Context::Heredoc => quote::heredoc(&value),
            Context::QuotedHeredoc => value.clone(),
        };
        // Backquotes are read twice: once to find the command, once to run it. Each layer,
        // innermost first, takes one level of backslashes; inside double quotes `"` too.
        let mut backquoted = false;
        for (i, frame) in self.stack.iter().enumerate().rev() {
            if let Frame::Code {
                end: End::Backquote,
                nested,
                ..
            } = frame
            {
                if *nested {
                    return Err(ShellError::NestedBackquotes { line });
                }
                backquoted = true;
                let in_double = self.stack[..i]
                    .iter()
                    .any(|f| matches!(f, Frame::Double | Frame::Braces { quoted: true }));
                text = quote::backquoted(&text, in_double);
            }
        }
        if self.dirty.is_none() && self.stack.iter().any(|f| matches!(f, Frame::Heredoc(_))) {
            self.dirty = Some(self.out.rfind('\n').map_or(0, |i| i + 1));
        }
        self.out.push_str(&text);
        self.word_start = false;
        self.placed.push(Placed {
            context,
            line,
            value,
            backquoted,
        });
        Ok(())
    }

    /// A value must not make a here-document line equal to its delimiter.
    fn check_dirty(&mut self) -> Result<(), ShellError> {
        let Some(from) = self.dirty.take() else {
            return Ok(());
        };
        for frame in &self.stack {
            let Frame::Heredoc(h) = frame else { continue };
            // Shells disagree about lines that only start with the delimiter: inside a command
            // substitution bash ends the body at `EOF)` or `EOF\$(…`, and dash garbles the bytes
            // after a delimiter prefix (`EOFé` arrives as `EOF\u{fffd}`). Refuse any such line.
            for piece in self.out[from..].split('\n') {
                let piece = if h.strip_tabs {
                    piece.trim_start_matches('\t')
                } else {
                    piece
                };
                if piece.starts_with(h.delimiter.as_str()) {
                    return Err(ShellError::Delimiter {
                        delimiter: h.delimiter.clone(),
                        line: self.line,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
