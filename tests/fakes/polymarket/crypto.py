"""What the fake Polymarket checks cryptographically, written independently of the client (only eth-account):

* **L1** (``/auth/*``): the ``ClobAuth`` EIP-712 message (domain ``ClobAuthDomain`` v1, the chain id) signed by
  the wallet in ``POLY_SIGNATURE``; the recovered address must be ``POLY_ADDRESS``.
* **L2** (every private call): ``POLY_SIGNATURE`` = urlsafe-base64 HMAC-SHA256, keyed with the urlsafe-base64
  decoded API secret, of ``timestamp + method + path + body``; ``POLY_PASSPHRASE`` and ``POLY_ADDRESS`` must be
  the key's.
* **Orders**: the CTF Exchange V2 ``Order`` typed data (domain "Polymarket CTF Exchange" v2, the chain id and the
  exchange contract, the neg-risk one for neg-risk markets); the signer recovered from ``signature`` must be the
  order's ``signer`` (and, for EOA orders, its ``maker``). The order id is the typed data's EIP-712 hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"

#: chain id -> (exchange V2, neg-risk exchange V2), as published by Polymarket (the client's config has them too).
EXCHANGES: dict[int, tuple[str, str]] = {
    137: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59"),
    80002: ("0xE111180000d2663C0091e4f400237545B87B996B", "0xe2222d279d744050d28e00520010520000310F59"),
}

_DOMAIN = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
           {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
_ORDER = [{"name": n, "type": t} for n, t in (
    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"), ("signatureType", "uint8"),
    ("timestamp", "uint256"), ("metadata", "bytes32"), ("builder", "bytes32"))]


def _bytes32(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x").zfill(64))


def order_typed_data(order: dict[str, Any], chain_id: int, neg_risk: bool) -> dict[str, Any]:
    exchange, neg_exchange = EXCHANGES[chain_id]
    return {
        "primaryType": "Order",
        "types": {"EIP712Domain": _DOMAIN, "Order": _ORDER},
        "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": chain_id,
                   "verifyingContract": neg_exchange if neg_risk else exchange},
        "message": {
            "salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
            "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]), "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]), "timestamp": int(order["timestamp"]),
            "metadata": _bytes32(order["metadata"]), "builder": _bytes32(order["builder"])},
    }


def order_hash(order: dict[str, Any], chain_id: int, neg_risk: bool) -> str:
    """The order id: the EIP-712 hash of the signed order."""
    msg = encode_typed_data(full_message=order_typed_data(order, chain_id, neg_risk))
    return "0x" + keccak(b"\x19" + msg.version + msg.header + msg.body).hex()


def order_signer(order: dict[str, Any], chain_id: int, neg_risk: bool) -> str:
    """The address that signed ``order`` (raises on a malformed signature)."""
    msg = encode_typed_data(full_message=order_typed_data(order, chain_id, neg_risk))
    return str(Account.recover_message(msg, signature=order["signature"]))


def clob_auth_signer(address: str, timestamp: str, nonce: int, signature: str, chain_id: int) -> str:
    msg = encode_typed_data(full_message={
        "primaryType": "ClobAuth",
        "types": {"EIP712Domain": _DOMAIN[:3],
                  "ClobAuth": [{"name": "address", "type": "address"}, {"name": "timestamp", "type": "string"},
                               {"name": "nonce", "type": "uint256"}, {"name": "message", "type": "string"}]},
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce, "message": CLOB_AUTH_MESSAGE},
    })
    return str(Account.recover_message(msg, signature=signature))


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    message = f"{timestamp}{method}{path}{body}"
    digest = hmac.new(base64.urlsafe_b64decode(secret), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def derive_creds(address: str, nonce: int) -> dict[str, str]:
    """Deterministic API credentials of a wallet and nonce (as Polymarket's derive endpoint is)."""
    seed = hashlib.sha256(f"{address.lower()}:{nonce}".encode()).digest()
    key = seed[:16].hex()
    return {"apiKey": f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:]}",
            "secret": base64.urlsafe_b64encode(hashlib.sha256(seed + b"secret").digest()).decode(),
            "passphrase": hashlib.sha256(seed + b"pass").hexdigest()}
