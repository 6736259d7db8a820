//! Relay connections: page information and the macro that declares a
//! connection type and its edge type for a node type.

use async_graphql::SimpleObject;

/// Relay page information.
#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// Declares a Relay connection type and its edge type for a node type.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        /// An edge of a connection.
        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        /// A page of a list, Relay style.
        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub nodes: Vec<$node>,
            pub page_info: $crate::graphql::connection::PageInfo,
            /// Items matching the filter across all pages (only those you may read).
            pub total_count: i64,
        }

        impl $conn {
            pub fn from_page<M>(
                page: $crate::service::Page<M>,
                id_of: impl Fn(&M) -> i64,
                wrap: impl Fn(M) -> $node,
            ) -> Self {
                let edges: Vec<$edge> = page
                    .items
                    .into_iter()
                    .map(|m| $edge {
                        cursor: $crate::graphql::ids::cursor(id_of(&m)),
                        node: wrap(m),
                    })
                    .collect();
                Self {
                    page_info: $crate::graphql::connection::PageInfo {
                        has_next_page: page.has_next,
                        has_previous_page: page.has_previous,
                        start_cursor: edges.first().map(|e| e.cursor.clone()),
                        end_cursor: edges.last().map(|e| e.cursor.clone()),
                    },
                    nodes: edges.iter().map(|e| e.node.clone()).collect(),
                    edges,
                    total_count: page
                        .total
                        .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
                        .unwrap_or(0),
                }
            }
        }
    };
}
