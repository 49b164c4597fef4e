//! Atlassian Document Format, the rich-text JSON Jira Cloud REST v3 takes for issue
//! descriptions and comment bodies
//! (<https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/>): a `doc`
//! node (`version: 1`) whose content is block nodes (paragraph, heading, bulletList →
//! listItem, codeBlock) holding inline nodes (text with marks, hardBreak).
//!
//! Typed here so a body is built as values and serialised once, never assembled from strings.
//! ADF refuses empty text nodes, so [`Inline::text`] drops them.

use serde::{Deserialize, Serialize};

/// A whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    /// Always `doc`.
    #[serde(rename = "type")]
    pub kind: DocKind,
    /// Always 1.
    pub version: u32,
    /// Block nodes.
    pub content: Vec<Block>,
}

/// The `type` of a [`Doc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// `doc`.
    Doc,
}

impl Doc {
    /// A document of `content`.
    pub fn new(content: Vec<Block>) -> Doc {
        Doc { kind: DocKind::Doc, version: 1, content }
    }

    /// The text of every text node, blocks separated by newlines (for tests and logs).
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for b in &self.content {
            b.plain_text(&mut out);
        }
        out
    }
}

/// A block node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Block {
    /// A paragraph.
    Paragraph {
        /// Inline content.
        #[serde(default)]
        content: Vec<Inline>,
    },
    /// A heading, level 1-6.
    Heading {
        /// The level.
        attrs: HeadingAttrs,
        /// Inline content.
        #[serde(default)]
        content: Vec<Inline>,
    },
    /// A bulleted list of [`Block::ListItem`]s.
    BulletList {
        /// The items.
        content: Vec<Block>,
    },
    /// One list item (paragraphs inside).
    ListItem {
        /// The item's blocks.
        content: Vec<Block>,
    },
    /// Preformatted text.
    CodeBlock {
        /// One text node, no marks.
        #[serde(default)]
        content: Vec<Inline>,
    },
}

/// A heading's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadingAttrs {
    /// 1-6.
    pub level: u8,
}

impl Block {
    /// A paragraph of `content` (empty text nodes dropped).
    pub fn paragraph(content: Vec<Inline>) -> Block {
        Block::Paragraph { content: content.into_iter().filter(|i| !i.is_empty()).collect() }
    }

    /// A heading.
    pub fn heading(level: u8, text: &str) -> Block {
        Block::Heading {
            attrs: HeadingAttrs { level: level.clamp(1, 6) },
            content: Inline::text(text).into_iter().collect(),
        }
    }

    /// A bulleted list, one paragraph per item.
    pub fn bullets(items: Vec<Vec<Inline>>) -> Block {
        Block::BulletList {
            content: items.into_iter().map(|i| Block::ListItem { content: vec![Block::paragraph(i)] }).collect(),
        }
    }

    /// A code block of `text`.
    pub fn code(text: &str) -> Block {
        Block::CodeBlock { content: Inline::text(text).into_iter().collect() }
    }

    fn plain_text(&self, out: &mut String) {
        match self {
            Block::Paragraph { content } | Block::Heading { content, .. } | Block::CodeBlock { content } => {
                for i in content {
                    match i {
                        Inline::Text { text, .. } => out.push_str(text),
                        Inline::HardBreak => out.push('\n'),
                    }
                }
                out.push('\n');
            }
            Block::BulletList { content } | Block::ListItem { content } => {
                for b in content {
                    b.plain_text(out);
                }
            }
        }
    }
}

/// An inline node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Inline {
    /// Text, optionally marked.
    Text {
        /// Never empty.
        text: String,
        /// Marks (bold, code, link).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        marks: Vec<Mark>,
    },
    /// A line break.
    HardBreak,
}

impl Inline {
    /// Plain text (`None` when empty: ADF refuses empty text nodes).
    pub fn text(text: &str) -> Option<Inline> {
        (!text.is_empty()).then(|| Inline::Text { text: text.to_string(), marks: Vec::new() })
    }

    /// Plain text; empty text gives an empty node that [`Block::paragraph`] drops.
    pub fn plain(text: impl Into<String>) -> Inline {
        Inline::Text { text: text.into(), marks: Vec::new() }
    }

    /// Bold text.
    pub fn strong(text: impl Into<String>) -> Inline {
        Inline::Text { text: text.into(), marks: vec![Mark::Strong] }
    }

    /// Monospace text (ids, hashes, actions).
    pub fn code(text: impl Into<String>) -> Inline {
        Inline::Text { text: text.into(), marks: vec![Mark::Code] }
    }

    /// A link.
    pub fn link(text: impl Into<String>, href: impl Into<String>) -> Inline {
        Inline::Text { text: text.into(), marks: vec![Mark::Link { attrs: LinkAttrs { href: href.into() } }] }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Inline::Text { text, .. } if text.is_empty())
    }
}

/// A text mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Mark {
    /// Bold.
    Strong,
    /// Monospace.
    Code,
    /// A hyperlink.
    Link {
        /// Where to.
        attrs: LinkAttrs,
    },
}

/// A link's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAttrs {
    /// The URL.
    pub href: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_atlassian_documents_it() {
        let doc = Doc::new(vec![
            Block::heading(3, "Gate"),
            Block::paragraph(vec![
                Inline::strong("BLOCK"),
                Inline::plain(""),
                Inline::plain(" by "),
                Inline::code("r1"),
            ]),
            Block::bullets(vec![vec![Inline::link("dashboard", "https://g/x")]]),
        ]);
        let v = serde_json::to_value(&doc).unwrap();
        let want = serde_json::json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Gate"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "BLOCK", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " by "},
                {"type": "text", "text": "r1", "marks": [{"type": "code"}]}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "dashboard", "marks": [{"type": "link", "attrs": {"href": "https://g/x"}}]}]}]}]}
        ]});
        assert_eq!(v, want);
        let back: Doc = serde_json::from_value(v).unwrap();
        assert_eq!(back, doc);
        assert_eq!(doc.plain_text(), "Gate\nBLOCK by r1\ndashboard\n");
    }
}
