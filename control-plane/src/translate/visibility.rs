//! Which namespaces see an object (Istio's `exportTo`).

/// The namespaces an object is exported to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// Every namespace.
    Public,
    /// Only these namespaces (`~`, none, is an empty list).
    Only(Vec<String>),
}

impl Visibility {
    /// From an `exportTo` list of an object in `namespace`: empty or `*` is public, `.` is the
    /// object's own namespace, `~` is none, anything else a namespace name.
    pub(crate) fn from_export_to<S: AsRef<str>>(export_to: &[S], namespace: &str) -> Self {
        if export_to.is_empty() || export_to.iter().any(|e| e.as_ref().trim() == "*") {
            return Visibility::Public;
        }
        Visibility::Only(
            export_to
                .iter()
                .map(|e| e.as_ref().trim())
                .filter(|e| *e != "~")
                .map(|e| if e == "." { namespace } else { e }.to_owned())
                .collect(),
        )
    }

    /// Whether a proxy in `namespace` sees the object.
    pub(crate) fn admits(&self, namespace: &str) -> bool {
        match self {
            Visibility::Public => true,
            Visibility::Only(namespaces) => namespaces.iter().any(|n| n == namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_to_forms() {
        let none: [&str; 0] = [];
        assert!(Visibility::from_export_to(&none, "shop").admits("any"));
        assert!(Visibility::from_export_to(&["*"], "shop").admits("any"));
        let own = Visibility::from_export_to(&["."], "shop");
        assert!(own.admits("shop") && !own.admits("mail"));
        let listed = Visibility::from_export_to(&[".", "mail"], "shop");
        assert!(listed.admits("mail") && listed.admits("shop") && !listed.admits("x"));
        assert!(!Visibility::from_export_to(&["~"], "shop").admits("shop"));
    }
}
