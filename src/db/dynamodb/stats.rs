//! What one `DynamoDb` handle has sent: request and item counts, and the
//! write units the server reported, for `bench/db_cost.py` and the tests
//! that bound a tick's cost.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb as sdk;

/// Requests sent so far by one `DynamoDb`, every attempt counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RequestStats {
    /// GetItem, BatchGetItem, Query, Scan and DescribeTable requests.
    pub read_requests: u64,
    /// PutItem, DeleteItem, BatchWriteItem and CreateTable requests.
    pub write_requests: u64,
    /// Items put or deleted (each costs at least one write unit).
    pub items_written: u64,
    /// Write capacity units the server reported as consumed.
    pub write_units: f64,
}

/// The live counts behind `RequestStats`, shared by the handle and its client.
#[derive(Debug, Default)]
pub(super) struct Counters {
    read_requests: AtomicU64,
    write_requests: AtomicU64,
    items_written: AtomicU64,
    /// Thousandths of a unit, so an atomic integer can add them up.
    write_millis: AtomicU64,
}

impl Counters {
    pub(super) fn read(&self) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn write(&self, items: usize) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.items_written
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "consumed units are small and never negative"
    )]
    /// Adds the write units a call reports it consumed.
    pub(super) fn consumed(&self, consumed: Option<&sdk::types::ConsumedCapacity>) {
        if let Some(units) = consumed.and_then(sdk::types::ConsumedCapacity::capacity_units) {
            self.write_millis
                .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    #[expect(
        clippy::cast_precision_loss,
        reason = "a count of thousandths stays far below 2^52"
    )]
    pub(super) fn snapshot(&self) -> RequestStats {
        RequestStats {
            read_requests: self.read_requests.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            items_written: self.items_written.load(Ordering::Relaxed),
            write_units: self.write_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}
