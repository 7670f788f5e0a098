//! The query protocol EC2 and RDS speak: `Action=…&Version=…` posted as a
//! form, XML back, pages joined by `NextToken` (EC2) or `Marker` (RDS).
//! Replies are parsed into owned [`Node`]s, so callers read plain data.

use chrono::{DateTime, Utc};

use super::signed::{CallError, Client, query};

/// One XML element, owned: tag name, text and children.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub tag: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn of(n: roxmltree::Node<'_, '_>) -> Node {
        Node {
            tag: n.tag_name().name().to_string(),
            text: n.text().unwrap_or("").trim().to_string(),
            children: n
                .children()
                .filter(|c| c.is_element())
                .map(Node::of)
                .collect(),
        }
    }

    /// The first child named `tag`.
    pub fn child(&self, tag: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.tag == tag)
    }

    /// The text of the first child named `tag`, if not empty.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.child(tag)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    pub fn flag(&self, tag: &str) -> bool {
        self.get(tag) == Some("true")
    }

    pub fn number(&self, tag: &str) -> Option<i64> {
        self.get(tag)?.parse().ok()
    }

    pub fn time(&self, tag: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.get(tag)?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Every descendant named `tag`, depth first.
    pub fn find(&self, tag: &str) -> Option<&Node> {
        if self.tag == tag {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(tag))
    }
}

/// Pages an API call returns at most; a safety stop against a server that
/// hands back the same token forever.
const MAX_PAGES: usize = 10_000;

/// Calls `action` (`Describe…`, read-only by name) with `params`, page by
/// page, and returns each page's `list` element's items. `marker` is the
/// pagination field: "NextToken" (EC2) or "Marker" (RDS).
pub fn describe(
    client: &Client,
    version: &str,
    action: &str,
    params: &[(&str, String)],
    list: &str,
    marker: &str,
) -> Result<Vec<Node>, CallError> {
    debug_assert!(action.starts_with("Describe"));
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut p: Vec<(&str, String)> = vec![
            ("Action", action.to_string()),
            ("Version", version.to_string()),
        ];
        p.extend(params.iter().cloned());
        if let Some(t) = &token {
            p.push((marker, t.clone()));
        }
        let reply = client.call("POST", "/", Some(&query(&p)), action)?;
        let text = String::from_utf8_lossy(&reply.body);
        let doc = roxmltree::Document::parse(&text).map_err(|e| CallError {
            service: "aws",
            what: action.to_string(),
            reason: format!("reply is not XML: {e}"),
            code: None,
            status: None,
        })?;
        let root = Node::of(doc.root_element());
        if let Some(items) = root.find(list) {
            out.extend(items.children.iter().cloned());
        }
        let next = root
            .find(marker)
            .map(|n| n.text.clone())
            .filter(|t| !t.is_empty());
        if next.is_none() || next == token {
            return Ok(out);
        }
        token = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_read_plain_data() {
        let xml = r#"<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
          <snapshotSet><item><snapshotId>snap-1</snapshotId><encrypted>true</encrypted>
          <volumeSize>8</volumeSize><startTime>2026-12-01T03:00:00.000Z</startTime>
          <tagSet><item><key>backup</key><value>nightly</value></item></tagSet></item></snapshotSet>
          <nextToken>abc</nextToken></DescribeSnapshotsResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let root = Node::of(doc.root_element());
        let items = &root.find("snapshotSet").unwrap().children;
        assert_eq!(items.len(), 1);
        let s = &items[0];
        assert_eq!(s.get("snapshotId"), Some("snap-1"));
        assert!(s.flag("encrypted"));
        assert_eq!(s.number("volumeSize"), Some(8));
        assert_eq!(
            s.time("startTime").unwrap().to_rfc3339(),
            "2026-12-01T03:00:00+00:00"
        );
        assert_eq!(
            s.child("tagSet").unwrap().children[0].get("value"),
            Some("nightly")
        );
        assert_eq!(root.find("nextToken").unwrap().text, "abc");
    }
}
