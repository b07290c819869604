"""The TWS API's messages at server version 178: the request ids a client sends, and the
messages the server answers with, field by field as IB's decoders read them (ib_async's
decoder.py and ibapi's decoder.py were the reference; nothing is copied). IB's error codes and
texts are those users see in their logs (ibkr-facts.md)."""

from __future__ import annotations

from dataclasses import dataclass

from faultline.examples.trading.tws.wire import Field

# -- requests (client -> server) ----------------------------------------------------------
REQ_MKT_DATA, CANCEL_MKT_DATA, PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS = 1, 2, 3, 4, 5
REQ_ACCT_DATA, REQ_EXECUTIONS, REQ_IDS, REQ_CONTRACT_DATA = 6, 7, 8, 9
REQ_AUTO_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS, REQ_MANAGED_ACCTS = 15, 16, 17
REQ_CURRENT_TIME, REQ_MARKET_DATA_TYPE = 49, 59
REQ_POSITIONS, REQ_ACCOUNT_SUMMARY, CANCEL_ACCOUNT_SUMMARY, CANCEL_POSITIONS = 61, 62, 63, 64
START_API, REQ_ACCOUNT_UPDATES_MULTI, CANCEL_ACCOUNT_UPDATES_MULTI = 71, 76, 77
REQ_COMPLETED_ORDERS = 99

# -- IB's codes ---------------------------------------------------------------------------
NO_REQ = -1
TEXTS = {
    100: "Max rate of messages per second has been exceeded",
    103: "Duplicate order id",
    200: "No security definition has been found for the request",
    300: "Can't find EId with tickerId",
    320: "Server error when reading an API client request.",
    321: "Server error when validating an API client request.",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10147: "OrderId that needs to be cancelled is not found.",
}
FARMS_OK = (2104, 2106, 2158)

# tick types (IB's TickType)
BID_SIZE, BID, ASK, ASK_SIZE, LAST, LAST_SIZE, VOLUME = 0, 1, 2, 3, 4, 5, 8


@dataclass(frozen=True)
class Instrument:
    con_id: int
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"

    def fields(self) -> list[Field]:
        """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency,
        localSymbol, tradingClass: the contract as execDetails, position and openOrder carry it."""
        return [self.con_id, self.symbol, self.sec_type, "", 0.0, "", "", self.exchange, self.currency,
                self.symbol, self.symbol]


@dataclass
class OrderRecord:
    order_id: int
    client_id: int
    perm_id: int
    instrument: Instrument
    action: str
    qty: float
    order_type: str
    lmt_price: float | None
    order_ref: str
    account: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0


@dataclass(frozen=True)
class ExecutionRecord:
    exec_id: str
    order_id: int
    perm_id: int
    client_id: int
    instrument: Instrument
    side: str  # BOT / SLD
    shares: float
    price: float
    time: str  # "YYYYmmdd HH:MM:SS UTC"
    account: str
    order_ref: str


# -- messages (server -> client) ----------------------------------------------------------
def error(req_id: int, code: int, text: str = "", detail: str = "") -> list[Field]:
    msg = text or TEXTS.get(code, "")
    if detail:  # IB appends some details directly (100's ":max=50 rec=51"), others after a space
        msg += detail if detail.startswith(":") else f" {detail}"
    return [4, 2, req_id, code, msg, ""]


def next_valid_id(order_id: int) -> list[Field]:
    return [9, 1, order_id]


def managed_accounts(accounts: list[str]) -> list[Field]:
    return [15, 1, ",".join(accounts)]


def current_time(epoch_s: int) -> list[Field]:
    return [49, 1, epoch_s]


def tick_price(req_id: int, tick_type: int, price: float, size: float) -> list[Field]:
    return [1, 6, req_id, tick_type, price, size, 0]


def tick_size(req_id: int, tick_type: int, size: float) -> list[Field]:
    return [2, 6, req_id, tick_type, size]


def market_data_type(req_id: int, kind: int = 1) -> list[Field]:
    return [58, 1, req_id, kind]


def order_status(o: OrderRecord, last_price: float = 0.0) -> list[Field]:
    return [3, o.order_id, o.status, o.filled, o.qty - o.filled, o.avg_price, o.perm_id, 0, last_price,
            o.client_id, "", 0.0]


# openOrder after orderId and the contract, in the decoder's order at version 178; "" is IB's
# "not set" for every number. The three counts (combo legs, order combo legs, smart-routing
# params) and the conditions count are 0, hedge type and algo strategy empty.
_OPEN_ORDER_HEAD = ("action totalQuantity orderType lmtPrice auxPrice tif ocaGroup account openClose origin "
                    "orderRef clientId permId outsideRth hidden discretionaryAmt goodAfterTime sharesAllocation "
                    "faGroup faMethod faPercentage modelCode goodTillDate rule80A percentOffset settlingFirm "
                    "shortSaleSlot designatedLocation exemptCode auctionStrategy startingPrice stockRefPrice "
                    "delta stockRangeLower stockRangeUpper displaySize blockOrder sweepToFill allOrNone minQty "
                    "ocaType eTradeOnly firmQuoteOnly nbboPriceCap parentId triggerMethod volatility "
                    "volatilityType deltaNeutralOrderType deltaNeutralAuxPrice continuousUpdate "
                    "referencePriceType trailStopPrice trailingPercent basisPoints basisPointsType "
                    "comboLegsDescrip numComboLegs numOrderComboLegs numSmartComboParams scaleInitLevelSize "
                    "scaleSubsLevelSize scalePriceIncrement hedgeType optOutSmartRouting clearingAccount "
                    "clearingIntent notHeld deltaNeutralContractPresent algoStrategy solicited whatIf status "
                    "initMarginBefore maintMarginBefore equityWithLoanBefore initMarginChange maintMarginChange "
                    "equityWithLoanChange initMarginAfter maintMarginAfter equityWithLoanAfter commission "
                    "minCommission maxCommission commissionCurrency warningText randomizeSize randomizePrice "
                    "numConditions adjustedOrderType triggerPrice trailStopPrice2 lmtPriceOffset adjustedStopPrice "
                    "adjustedStopLimitPrice adjustedTrailingAmount adjustableTrailingUnit softDollarName "
                    "softDollarVal softDollarDisplayName cashQty dontUseAutoPriceForHedge isOmsContainer "
                    "discretionaryUpToLimitPrice usePriceMgmtAlgo duration postToAts autoCancelParent "
                    "minTradeQty minCompeteSize competeAgainstBestOffset midOffsetAtWhole midOffsetAtHalf").split()


def open_order(o: OrderRecord) -> list[Field]:
    v: dict[str, Field] = dict.fromkeys(_OPEN_ORDER_HEAD, "")
    v |= {"action": o.action, "totalQuantity": o.qty, "orderType": o.order_type,
          "lmtPrice": "" if o.lmt_price is None else o.lmt_price, "tif": "DAY", "account": o.account,
          "openClose": "", "origin": 0, "orderRef": o.order_ref, "clientId": o.client_id, "permId": o.perm_id,
          "outsideRth": False, "hidden": False, "numComboLegs": 0, "numOrderComboLegs": 0,
          "numSmartComboParams": 0, "deltaNeutralContractPresent": False, "solicited": False, "whatIf": False,
          "status": o.status, "randomizeSize": False, "randomizePrice": False, "numConditions": 0}
    return [5, o.order_id, *o.instrument.fields(), *(v[k] for k in _OPEN_ORDER_HEAD)]


def open_order_end() -> list[Field]:
    return [53, 1]


def exec_details(req_id: int, e: ExecutionRecord, cum_qty: float, avg_price: float) -> list[Field]:
    return [11, req_id, e.order_id, *e.instrument.fields(), e.exec_id, e.time, e.account, e.instrument.exchange,
            e.side, e.shares, e.price, e.perm_id, e.client_id, 0, cum_qty, avg_price, e.order_ref, "", "", "", 1,
            False]


def exec_details_end(req_id: int) -> list[Field]:
    return [55, 1, req_id]


def commission_report(exec_id: str, commission: float) -> list[Field]:
    return [59, 1, exec_id, commission, "USD", "", "", ""]


def position(account: str, instrument: Instrument, qty: float, avg_cost: float) -> list[Field]:
    return [61, 3, account, *instrument.fields(), qty, avg_cost]


def position_end() -> list[Field]:
    return [62, 1]


def account_value(key: str, value: str, currency: str, account: str) -> list[Field]:
    return [6, 2, key, value, currency, account]


def account_time(hhmm: str) -> list[Field]:
    return [8, 1, hhmm]


def account_download_end(account: str) -> list[Field]:
    return [54, 1, account]


def account_update_multi(req_id: int, account: str, key: str, value: str, currency: str) -> list[Field]:
    return [73, 1, req_id, account, "", key, value, currency]


def account_update_multi_end(req_id: int) -> list[Field]:
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[Field]:
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[Field]:
    return [64, 1, req_id]


def contract_details(req_id: int, i: Instrument) -> list[Field]:
    """contractDetails at 178 (no version field since 164): enough for qualifyContracts."""
    return [10, req_id, i.symbol, i.sec_type, "", 0.0, "", i.exchange, i.currency, i.symbol, i.symbol, i.symbol,
            i.con_id, 0.01, "", "LMT,MKT", "SMART,NASDAQ,NYSE,ARCA", 1, 0, i.symbol, "NASDAQ", "", "", "", "",
            "US/Eastern", "", "", "", "", 0, 1, "", "", "", "", "COMMON", 1, 1, 1]


def contract_details_end(req_id: int) -> list[Field]:
    return [52, 1, req_id]


def completed_orders_end() -> list[Field]:
    return [102]
