//! A subject trie: which patterns match a subject, without scanning every pattern.

use std::collections::HashMap;

/// Patterns (validated token lists) with a value per entry id.
#[derive(Debug)]
pub(crate) struct SubjectTrie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    /// Children by token; `*` and `>` are stored as literal tokens (subjects cannot contain
    /// them, so they only come from patterns).
    children: HashMap<String, Node<T>>,
    /// Entries whose pattern ends here.
    entries: Vec<(u64, T)>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entries.is_empty()
    }
}

impl<T> Default for SubjectTrie<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> SubjectTrie<T> {
    /// Adds entry `id` with `pattern`.
    pub(crate) fn insert<S: AsRef<str>>(&mut self, pattern: &[S], id: u64, value: T) {
        let mut node = &mut self.root;
        for token in pattern {
            node = node.children.entry(token.as_ref().to_owned()).or_default();
        }
        node.entries.push((id, value));
        self.len += 1;
    }

    /// Removes entry `id` of `pattern`, pruning emptied nodes.
    pub(crate) fn remove<S: AsRef<str>>(&mut self, pattern: &[S], id: u64) -> Option<T> {
        let removed = Self::remove_at(&mut self.root, pattern, id);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    fn remove_at<S: AsRef<str>>(node: &mut Node<T>, pattern: &[S], id: u64) -> Option<T> {
        match pattern.split_first() {
            None => {
                let at = node.entries.iter().position(|(e, _)| *e == id)?;
                Some(node.entries.swap_remove(at).1)
            }
            Some((token, rest)) => {
                let child = node.children.get_mut(token.as_ref())?;
                let removed = Self::remove_at(child, rest, id);
                if child.is_empty() {
                    node.children.remove(token.as_ref());
                }
                removed
            }
        }
    }

    /// Every entry whose pattern matches the concrete `subject`.
    pub(crate) fn matches<'a>(&'a self, subject: &[&str]) -> Vec<&'a (u64, T)> {
        let mut out = Vec::new();
        Self::collect(&self.root, subject, &mut out);
        out
    }

    fn collect<'a>(node: &'a Node<T>, subject: &[&str], out: &mut Vec<&'a (u64, T)>) {
        let Some((token, rest)) = subject.split_first() else {
            out.extend(node.entries.iter());
            return;
        };
        if let Some(child) = node.children.get(*token) {
            Self::collect(child, rest, out);
        }
        if let Some(child) = node.children.get("*") {
            Self::collect(child, rest, out);
        }
        if let Some(child) = node.children.get(">") {
            out.extend(child.entries.iter());
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::{tokens_match, validate_pattern, validate_subject};

    #[test]
    fn agrees_with_the_reference_matcher() {
        let patterns = [
            "a", "a.b", "a.*", "a.>", "*.b", ">", "a.b.c", "a.*.c", "*.*.*", "b.>", "a.b.>",
        ];
        let subjects = [
            "a", "b", "a.b", "a.c", "b.b", "a.b.c", "a.x.c", "a.b.c.d", "b.c.d",
        ];
        let mut trie = SubjectTrie::default();
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(&validate_pattern(p).unwrap(), i as u64, *p);
        }
        assert_eq!(trie.len(), patterns.len());
        for s in subjects {
            let tokens = validate_subject(s).unwrap();
            let mut got: Vec<&str> = trie.matches(&tokens).into_iter().map(|e| e.1).collect();
            got.sort_unstable();
            let mut want: Vec<&str> = patterns
                .iter()
                .copied()
                .filter(|p| tokens_match(&validate_pattern(p).unwrap(), &tokens))
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "{s}");
        }
        for (i, p) in patterns.iter().enumerate() {
            assert_eq!(
                trie.remove(&validate_pattern(p).unwrap(), i as u64),
                Some(*p)
            );
        }
        assert_eq!(trie.len(), 0);
        assert!(trie.root.is_empty());
    }
}
