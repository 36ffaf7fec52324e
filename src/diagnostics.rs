//! `file:line: message` problems, collected from every input file before Loa starts.
//!
//! Loading never stops at the first mistake: an operator fixing a config at 3 a.m. wants every
//! problem in one go, each pointing at the line to edit.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when the input format tells us one.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// A problem at a byte offset of `source`.
    pub fn at_offset(file: &Path, source: &str, offset: usize, message: impl Into<String>) -> Self {
        Problem::new(file, Some(line_of_offset(source, offset)), message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found while loading; the error of `loa check` and of a refused `loa run`.
#[derive(Debug, Clone, Default, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// 1-based line number of a byte offset.
pub fn line_of_offset(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The problem a TOML parse error describes, at its line.
pub fn from_toml_error(file: &Path, source: &str, err: &toml::de::Error) -> Problem {
    let line = err.span().map(|span| line_of_offset(source, span.start));
    Problem::new(file, line, err.message().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based() {
        let src = "a\nb\nc";
        assert_eq!(line_of_offset(src, 0), 1);
        assert_eq!(line_of_offset(src, 2), 2);
        assert_eq!(line_of_offset(src, 4), 3);
    }

    #[test]
    fn display_is_file_colon_line() {
        let p = Problem::new(Path::new("schedules/x.toml"), Some(3), "bad cron");
        assert_eq!(p.to_string(), "schedules/x.toml:3: bad cron");
    }
}
