//! The plot product's store contract (features `test-util` and `plots`): one set of tests for
//! [`DataStore`](crate::plot::DataStore) and [`ImageStore`](crate::plot::ImageStore), which the
//! in-memory and the Redis stores both run.
//!
//! A store's test file names a factory returning [`Plots`] over fresh, empty stores and invokes
//! the macro:
//!
//! ```ignore
//! async fn make() -> holidapp_core::plot::Plots {
//!     holidapp_core::plot::Plots::in_memory()
//! }
//!
//! holidapp_core::plot_store_contract_suite!(make);
//! ```

use std::future::Future;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::json;

use crate::error::Error;
use crate::plot::parse::bundled;
use crate::plot::{DataSet, Plots, Record};

/// Makes fresh, empty plot stores for one test.
pub trait MakePlots: Sync {
    /// The product over fresh stores.
    fn make(&self) -> BoxFuture<'static, Plots>;
}

impl<F, Fut> MakePlots for F
where
    F: Fn() -> Fut + Sync,
    Fut: Future<Output = Plots> + Send + 'static,
{
    fn make(&self) -> BoxFuture<'static, Plots> {
        Box::pin(self())
    }
}

fn sample_data(n: usize) -> DataSet {
    DataSet::new(
        (0..n)
            .map(|i| {
                let id = format!("HGNC:{i}");
                let fields = json!({"hgnc_id": id, "symbol": format!("G{i}"), "date_approved_reserved": "2001-02-03"});
                Record {
                    id,
                    fields: fields.as_object().cloned().unwrap_or_default(),
                }
            })
            .collect(),
    )
}

/// Nothing loaded: version 0, empty reads.
pub async fn data_starts_empty<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.data();
    assert_eq!(b.version().await.unwrap(), 0);
    assert_eq!(b.len().await.unwrap(), 0);
    assert!(b.page(0, 10).await.unwrap().is_empty());
    assert_eq!(b.record("HGNC:1").await.unwrap(), None);
    assert!(b.ids().await.unwrap().is_empty());
    assert!(b.load().await.unwrap().1.is_empty());
    assert!(!b.clear().await.unwrap());
}

/// A loaded data set reads back in order, by page and by id.
pub async fn data_reads_back_in_load_order<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.data();
    let data = sample_data(250);
    assert_eq!(b.replace(data.clone()).await.unwrap(), 250);
    assert!(b.version().await.unwrap() > 0);
    assert_eq!(b.len().await.unwrap(), 250);
    assert_eq!(b.page(0, 3).await.unwrap(), data.records[..3].to_vec());
    assert_eq!(b.page(248, 10).await.unwrap(), data.records[248..].to_vec());
    assert!(b.page(250, 10).await.unwrap().is_empty());
    assert!(b.page(u64::MAX, u64::MAX).await.unwrap().is_empty());
    assert_eq!(b.page(10, 0).await.unwrap(), Vec::<Record>::new());
    assert_eq!(
        b.record("HGNC:42").await.unwrap(),
        Some(data.records[42].clone())
    );
    assert_eq!(b.record("HGNC:999").await.unwrap(), None);
    let ids = b.ids().await.unwrap();
    assert_eq!(ids.len(), 250);
    assert_eq!(ids[7], "HGNC:7");
    let (_, loaded) = b.load().await.unwrap();
    assert_eq!(*loaded, data);
}

/// `replace` swaps the whole set and changes the version; `clear` empties it.
pub async fn data_replace_and_clear_change_the_version<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.data();
    b.replace(sample_data(10)).await.unwrap();
    let v1 = b.version().await.unwrap();
    b.replace(sample_data(3)).await.unwrap();
    let v2 = b.version().await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(b.len().await.unwrap(), 3);
    assert_eq!(
        b.record("HGNC:5").await.unwrap(),
        None,
        "old records are gone"
    );
    let (version, loaded) = b.load().await.unwrap();
    assert_eq!((version, loaded.len()), (v2, 3));
    assert!(b.clear().await.unwrap());
    assert_ne!(b.version().await.unwrap(), v2);
    assert_eq!(b.len().await.unwrap(), 0);
    assert!(b.page(0, 10).await.unwrap().is_empty());
    assert!(!b.clear().await.unwrap());
}

/// A data set with a repeated record id is refused and the loaded one stays as it was.
pub async fn data_with_duplicate_ids_is_refused<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.data();
    b.replace(sample_data(4)).await.unwrap();
    let version = b.version().await.unwrap();
    let mut twice = sample_data(3);
    twice.records.push(twice.records[1].clone());
    assert!(matches!(b.replace(twice).await, Err(Error::InvalidData(_))));
    assert_eq!(b.version().await.unwrap(), version);
    assert_eq!(b.len().await.unwrap(), 4);
    assert_eq!(b.ids().await.unwrap().len(), 4);
}

/// The image is stored, read back and removed.
pub async fn image_round_trips<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.images();
    assert_eq!(b.get_image().await.unwrap(), None);
    assert!(!b.delete_image().await.unwrap());
    let png = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    b.put_image(png.clone()).await.unwrap();
    assert_eq!(b.get_image().await.unwrap(), Some(png));
    b.put_image(Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        b.get_image().await.unwrap(),
        Some(Bytes::from_static(b"second"))
    );
    assert!(b.delete_image().await.unwrap());
    assert_eq!(b.get_image().await.unwrap(), None);
}

/// The bundled data sets are stored and read back exactly.
pub async fn the_bundled_data_sets_round_trip<M: MakePlots>(make: &M) {
    let plots = make.make().await;
    let b = plots.data();
    for name in ["hgnc", "meteorites"] {
        let data = bundled(name).expect("bundled data set");
        assert!(!data.is_empty());
        let count = b.replace(data.clone()).await.unwrap();
        assert_eq!(count, data.len() as u64);
        let (_, loaded) = b.load().await.unwrap();
        assert_eq!(*loaded, data, "{name}");
        let last = data.records.last().unwrap();
        assert_eq!(b.record(&last.id).await.unwrap().as_ref(), Some(last));
        assert_eq!(b.page(1, 2).await.unwrap(), data.records[1..3].to_vec());
    }
}

/// Runs the whole plot store contract against a factory (see the [module docs](self)).
#[macro_export]
macro_rules! plot_store_contract_suite {
    ($make:path) => {
        $crate::plot_store_contract_suite!(@each $make;
            data_starts_empty,
            data_reads_back_in_load_order,
            data_replace_and_clear_change_the_version,
            data_with_duplicate_ids_is_refused,
            image_round_trips,
            the_bundled_data_sets_round_trip,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::contract::plot::$name(&$make).await;
            }
        )*
    };
}
