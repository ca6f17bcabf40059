//! What translation, the folder reader and `analyze` report about users' objects: which object
//! and field, what is wrong, and what to do about it.

use std::fmt;

use crate::store::ObjectRef;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The object (or, for Gateway API routes, the rule) is not applied.
    Error,
    /// The object is applied, but not entirely as written.
    Warning,
    /// Worth knowing; nothing is lost.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One problem with one object (or one manifest document).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// The object concerned, when it could be read.
    pub object: Option<ObjectRef>,
    /// Where the object came from (a manifest file and document), when known.
    pub source: Option<String>,
    /// The field concerned, as a path such as `spec.http[0].route[1].destination.subset`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// The Gateway API condition reason it gives its object's status, when one fits.
    pub reason: Option<&'static str>,
}

impl Problem {
    /// An error: the object is not applied.
    pub fn error(
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Problem::new(Severity::Error, object, field, message, hint)
    }

    /// A warning: the object is applied, but not entirely as written.
    pub fn warning(
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Problem::new(Severity::Warning, object, field, message, hint)
    }

    /// A note: nothing is wrong, but the user should know.
    pub fn info(
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Problem::new(Severity::Info, object, field, message, hint)
    }

    fn new(
        severity: Severity,
        object: &ObjectRef,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Problem {
            severity,
            object: Some(object.clone()),
            source: None,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
            reason: None,
        }
    }

    /// The same problem, giving `reason` to its object's status conditions.
    pub fn with_reason(self, reason: &'static str) -> Self {
        Problem {
            reason: Some(reason),
            ..self
        }
    }

    /// Whether the problem stops the object from being applied.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.severity)?;
        if let Some(object) = &self.object {
            write!(f, " {object}")?;
        }
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "; {}", self.hint)?;
        }
        Ok(())
    }
}

/// Problems found while compiling one object, with its reference and the field path at hand.
pub(crate) struct Report<'a> {
    object: &'a ObjectRef,
    problems: Vec<Problem>,
}

impl<'a> Report<'a> {
    /// An empty report about `object`.
    pub(crate) fn new(object: &'a ObjectRef) -> Self {
        Report {
            object,
            problems: Vec::new(),
        }
    }

    /// The object reported on.
    pub(crate) fn object(&self) -> &'a ObjectRef {
        self.object
    }

    /// Records an error.
    pub(crate) fn error(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems
            .push(Problem::error(self.object, field, message, hint));
    }

    /// Records a warning.
    pub(crate) fn warning(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems
            .push(Problem::warning(self.object, field, message, hint));
    }

    /// Records a problem found about another object on the way.
    pub(crate) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Whether an error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// How many errors were recorded.
    pub(crate) fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    /// The problems recorded.
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}
