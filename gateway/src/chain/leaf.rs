//! A block's leaves are the canonical bytes of its transactions, rebuilt
//! from the stored rows (never stored themselves), so altering a row
//! changes its leaf.

use chainpay_core::transaction::{ConversionLeg, TxFacts, TxType};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The columns a leaf is made of.
#[derive(Debug, Clone)]
pub struct LeafRow {
    pub tx_id: Uuid,
    pub tx_type: String,
    pub amount: i64,
    pub fee: i64,
    pub currency: String,
    pub from_user_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub to_currency: Option<String>,
    pub converted_amount: Option<i64>,
    /// `trim_scale(rate)::text`, as the conversion signed it.
    pub rate: Option<String>,
}

/// A [`LeafRow`] from a `query!` record holding its columns, for readers
/// that take more of the row than the leaf (each `query!` has a record
/// type of its own, so `query_as!` cannot name both).
#[macro_export]
macro_rules! leaf_row {
    ($record:ident) => {
        $crate::chain::leaf::LeafRow {
            tx_id: $record.tx_id,
            tx_type: $record.tx_type,
            amount: $record.amount,
            fee: $record.fee,
            currency: $record.currency,
            from_user_id: $record.from_user_id,
            to_user_id: $record.to_user_id,
            created_at: $record.created_at,
            to_currency: $record.to_currency,
            converted_amount: $record.converted_amount,
            rate: $record.rate,
        }
    };
}

impl LeafRow {
    /// The transaction's canonical bytes: the leaf.
    pub fn leaf(&self) -> anyhow::Result<Vec<u8>> {
        let mut leaf = Vec::with_capacity(256);
        self.write_leaf(&mut leaf)?;
        Ok(leaf)
    }

    /// Appends the leaf to `out`, for rebuilding many in one buffer.
    pub fn write_leaf(&self, out: &mut Vec<u8>) -> anyhow::Result<()> {
        let tx_type = TxType::parse(&self.tx_type)
            .ok_or_else(|| anyhow::anyhow!("unknown transaction type {}", self.tx_type))?;
        let conversion = match (&self.to_currency, self.converted_amount, &self.rate) {
            (Some(to_currency), Some(converted_minor), Some(rate)) => Some(ConversionLeg {
                to_currency: to_currency.clone(),
                converted_minor,
                rate: rate.clone(),
            }),
            _ => None,
        };
        TxFacts {
            tx_id: self.tx_id,
            tx_type,
            amount_minor: self.amount,
            fee_minor: self.fee,
            currency: self.currency.clone(),
            from_user_id: self.from_user_id,
            to_user_id: self.to_user_id,
            created_at: self.created_at,
            conversion,
        }
        .write_canonical(out);
        Ok(())
    }
}
