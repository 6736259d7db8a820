//! Alias limit: async-graphql limits depth and complexity itself; a document
//! that repeats a field under many aliases is refused here.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensions, Positioned, ServerResult, Variables};

pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

fn count(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|sel| match &sel.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count(&f.node.selection_set)
            }
            Selection::InlineFragment(i) => count(&i.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn aliases(doc: &ExecutableDocument) -> usize {
    let ops: usize = match &doc.operations {
        DocumentOperations::Single(op) => count(&op.node.selection_set),
        DocumentOperations::Multiple(map) => {
            map.values().map(|op| count(&op.node.selection_set)).sum()
        }
    };
    ops + doc
        .fragments
        .values()
        .map(|f| count(&f.node.selection_set))
        .sum::<usize>()
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let n = aliases(&doc);
        if n > self.0 {
            let err = async_graphql::Error::new(format!(
                "the document uses {n} aliases; at most {} are allowed",
                self.0
            ))
            .extend_with(|_, e| e.set("code", "BAD_USER_INPUT"));
            return Err(err.into_server_error(async_graphql::Pos::default()));
        }
        Ok(doc)
    }
}
