//! Requests that make no sense for the asset or case they name: answered
//! INVALID_ARGUMENT, with the rule that says why.

/// The request makes no sense for this asset or case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// R12: designation names another court.
    #[error("a case is designated to another court, not its own")]
    DesignatedToItself,
    /// R4: a deposit freeze states its claim.
    #[error("a deposit freeze states the claim (currency and amount) it secures (R4)")]
    NoClaim,
    /// R4: the claim is in the account's currency.
    #[error("the claim is in {currency} but the account holds {unit}")]
    ClaimCurrency {
        /// The claim's currency.
        currency: String,
        /// The account's.
        unit: String,
    },
    /// R10: the remainder is filed as a first-enforcement case.
    #[error("the receiving court files a first-enforcement case (执) for the remainder (R10), not a {case_type} case")]
    NotFirstEnforcement {
        /// The type of case filed.
        case_type: String,
    },
    /// R4: a freeze names a positive amount.
    #[error("a freeze of a deposit or securities names a positive amount (R4)")]
    NoFreezeAmount,
    /// R1: placements are numbered in order.
    #[error("placement order went backwards; retry")]
    OrderBackwards,
    /// R5, R6: a renewal's months.
    #[error("a renewal extends by 1 to {term} months for this asset class (R5, R6); asked for {months}")]
    RenewalMonths {
        /// The class's term.
        term: u32,
        /// Months asked.
        months: u32,
    },
    /// R9: deposits are deducted, other assets sold.
    #[error("only deposits are deducted (R9); dispose of other assets by sale")]
    NotDeposit,
    /// R9: a deduction names a positive amount.
    #[error("a deduction names a positive amount")]
    NoDeductionAmount,
    /// R8: an indivisible asset is sold whole.
    #[error("an indivisible asset is sold whole (R8)")]
    SoldWhole,
    /// R8: a partial sale names a positive amount.
    #[error("a partial sale names a positive amount")]
    NoSaleAmount,
    /// R14, R9: a deposit is deducted, not sold.
    #[error("disposal transfer (R14) moves the sale of an asset; a deposit is deducted (R9), not sold")]
    DepositNotSold,
    /// R24–R26: bankruptcy law reaches enterprise legal persons only.
    #[error(
        "the debtor is not an enterprise legal person (its credit code does not mark an enterprise or a \
         cooperative): bankruptcy review and bankruptcy apply to enterprises only (R24)"
    )]
    NotEnterprise,
    /// R24: a transfer states whose written consent it rests on.
    #[error(
        "a transfer to bankruptcy review states its grounds: whose written consent (the debtor's or an applicant's) (R24)"
    )]
    NoGrounds,
    /// R30: a resumption files a 执恢 case.
    #[error("{case} is not a resumed case (执恢): a terminated case is resumed under a new 执恢 case (R30)")]
    NotResumption {
        /// The case named.
        case: String,
    },
    /// R30: the court that terminated a case resumes it.
    #[error("{new} does not resume {old}: a case is resumed by its own court under a new case number (R30)")]
    ResumedElsewhere {
        /// The terminated case.
        old: String,
        /// The case named.
        new: String,
    },
    /// R25, R26: bankruptcy decisions are taken under a bankruptcy case.
    #[error("{case} is not a bankruptcy case (破申 or 破) (R25, R26)")]
    NotBankruptcyCase {
        /// The case named.
        case: String,
    },
    /// R3: a registry's reference names one seizure; an acknowledgement quoting another's is a lie.
    #[error(
        "INVALID_RESPONSE: the registry answered reference {reference}, which it already gave seizure {seizure} of \
         {case} on this asset; not acknowledged, asked again"
    )]
    ReferenceTaken {
        /// The reference.
        reference: String,
        /// The live seizure it belongs to.
        seizure: String,
        /// That seizure's case.
        case: String,
    },
    /// R29: an objection's corrections move money between ordinary claims within what was served.
    #[error("corrections: line {line} {why} (R29)")]
    Correction {
        /// The line's index.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// R28: a plan distributes money in one currency.
    #[error("the proceeds are in {proceeds} but {case}'s claim is in {claim}: one plan pays in one currency (R28)")]
    Currency {
        /// The case.
        case: String,
        /// The proceeds' currency.
        proceeds: String,
        /// The claim's.
        claim: String,
    },
    /// R28: amounts in a distribution are minor units, never negative.
    #[error("the {what} of a distribution is {amount}: amounts are minor units (分), never negative (R28)")]
    NegativeAmount {
        /// Which amount.
        what: &'static str,
        /// As given.
        amount: i64,
    },
}
