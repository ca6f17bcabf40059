//! Kubernetes Events for translation's problems: one per problem when it first appears, on
//! the object it concerns, so `kubectl describe` and `kubectl events` show why config did not
//! apply. A problem that persists across translations is not repeated; one that goes away and
//! comes back is reported again.

use std::collections::HashSet;

use kube::runtime::events::{Event, EventType};

use crate::translate::{Problem, Severity};

/// The longest note the events API accepts, in bytes.
const MAX_NOTE: usize = 1024;

/// The problems already reported as Events.
#[derive(Debug, Default)]
pub struct Reported {
    problems: HashSet<Problem>,
}

impl Reported {
    /// The problems of `current` not reported yet. Problems no longer current are forgotten.
    pub fn new_problems(&mut self, current: &[Problem]) -> Vec<Problem> {
        self.problems.retain(|p| current.contains(p));
        current
            .iter()
            .filter(|p| p.object.is_some() && !self.problems.contains(*p))
            .cloned()
            .collect()
    }

    /// Records that `problem` was reported.
    pub fn insert(&mut self, problem: Problem) {
        self.problems.insert(problem);
    }
}

/// The Event that reports `problem`.
pub fn event_for(problem: &Problem) -> Event {
    let (type_, reason) = match problem.severity {
        Severity::Error => (EventType::Warning, "ConfigRejected"),
        Severity::Warning => (EventType::Warning, "ConfigWarning"),
        Severity::Info => (EventType::Normal, "ConfigNote"),
    };
    let mut note = format!("{}: {}", problem.field, problem.message);
    if !problem.hint.is_empty() {
        note.push_str(&format!(" (hint: {})", problem.hint));
    }
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, MAX_NOTE)),
        action: "Translate".to_owned(),
        secondary: None,
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked with an ellipsis.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Kind, ObjectRef};

    fn problem(name: &str, message: &str) -> Problem {
        let object = ObjectRef::new(Kind::VirtualService, "shop", name);
        Problem::error(&object, "spec.http[0]", message, "fix it")
    }

    #[test]
    fn a_problem_is_reported_once_while_it_lasts_and_again_when_it_returns() {
        let mut reported = Reported::default();
        let (a, b) = (problem("a", "broken"), problem("b", "broken"));
        let both = [a.clone(), b.clone()];
        assert_eq!(reported.new_problems(&both), both);
        reported.insert(a.clone());
        assert_eq!(reported.new_problems(&both), std::slice::from_ref(&b));
        reported.insert(b.clone());
        assert!(reported.new_problems(&both).is_empty());
        assert!(reported.new_problems(std::slice::from_ref(&b)).is_empty());
        assert_eq!(reported.new_problems(&both), [a]);
    }

    #[test]
    fn events_say_what_is_wrong_where_and_what_to_do() {
        let event = event_for(&problem("a", "subset v3 is not defined"));
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.reason, "ConfigRejected");
        assert_eq!(
            event.note.as_deref(),
            Some("spec.http[0]: subset v3 is not defined (hint: fix it)")
        );
        let long = event_for(&problem("a", &"é".repeat(2000)));
        let note = long.note.expect("a note");
        assert!(
            note.len() <= MAX_NOTE && note.ends_with('…'),
            "{}",
            note.len()
        );
    }
}
