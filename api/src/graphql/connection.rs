//! Relay connections: page information and the macro that declares a
//! connection type and its edge type for a node type.

use async_graphql::SimpleObject;

/// Relay page information: where a page sits in the whole list. Use its
/// cursors as `after` or `before` to fetch the neighbouring page.
#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    /// True when more items follow this page. When paging backwards with
    /// `last`, it is true whenever `before` was given.
    pub has_next_page: bool,
    /// True when items come before this page. When paging forwards with
    /// `first`, it is true whenever `after` was given.
    pub has_previous_page: bool,
    /// Cursor of the page's first item; null when the page is empty.
    pub start_cursor: Option<String>,
    /// Cursor of the page's last item; null when the page is empty.
    pub end_cursor: Option<String>,
}

/// Declares a Relay connection type and its edge type for a node type,
/// with `nodes` as a `Vec` of it or as the list type given.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        connection!($conn, $edge, $node, Vec<$node>);
    };
    ($conn:ident, $edge:ident, $node:ty, $nodes:ty) => {
        #[doc = concat!("One `", stringify!($node), "` of a page, with its cursor.")]
        #[derive(async_graphql::SimpleObject, Clone)]
        pub struct $edge {
            /// Opaque cursor of this item: pass it as `after` or `before` to
            /// page from here.
            pub cursor: String,
            /// The item itself.
            pub node: $node,
        }

        #[doc = concat!("A page of `", stringify!($node), "` items, Relay style.")]
        #[derive(async_graphql::SimpleObject)]
        #[graphql(complex)]
        pub struct $conn {
            /// The row ids of `nodes`, one for one: the edges' cursors are
            /// made from them only when `edges` is selected.
            #[graphql(skip)]
            ids: Vec<i64>,
            /// The page's items without their cursors (the same as
            /// `edges { node }`).
            pub nodes: $nodes,
            /// Cursors and flags for fetching the next or previous page.
            pub page_info: $crate::graphql::connection::PageInfo,
            /// Items matching the filter across all pages (only those you may read).
            pub total_count: i64,
        }

        #[async_graphql::ComplexObject]
        impl $conn {
            /// The page's items, each with its cursor.
            async fn edges(&self) -> Vec<$edge> {
                self.ids
                    .iter()
                    .zip(self.nodes.iter())
                    .map(|(id, node)| $edge {
                        cursor: $crate::graphql::ids::cursor(*id),
                        node: node.clone(),
                    })
                    .collect()
            }
        }

        impl $conn {
            pub fn from_page<M>(
                page: $crate::service::Page<M>,
                id_of: impl Fn(&M) -> i64,
                wrap: impl Fn(M) -> $node,
            ) -> Self {
                let ids: Vec<i64> = page.items.iter().map(&id_of).collect();
                Self {
                    page_info: $crate::graphql::connection::PageInfo {
                        has_next_page: page.has_next,
                        has_previous_page: page.has_previous,
                        start_cursor: ids.first().map(|id| $crate::graphql::ids::cursor(*id)),
                        end_cursor: ids.last().map(|id| $crate::graphql::ids::cursor(*id)),
                    },
                    nodes: page.items.into_iter().map(wrap).collect(),
                    ids,
                    total_count: page
                        .total
                        .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
                        .unwrap_or(0),
                }
            }
        }
    };
}
