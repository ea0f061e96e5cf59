"""Values for ChainPay's own OpenAPI formats (gateway/src/http/formats.rs),
so that schemathesis's schema-valid requests are ones the server can accept:
numbers that are valid mobile numbers, currencies the demo database holds,
PINs that are not easy to guess and voucher codes with a valid check digit.
Negative cases still break the patterns and lengths the document states."""

import schemathesis
from hypothesis import strategies as st

# The demo users first (so requests reach real wallets), then any Kenyan
# mobile number, in each of the forms the server accepts.
_kenyan = st.from_regex(r"\A7[0-9]{8}\Z")
schemathesis.openapi.format(
    "phone",
    st.one_of(
        st.sampled_from(["+254700000000", "+254700000001", "0700000001"]),
        _kenyan.map(lambda n: "+254" + n),
        _kenyan.map(lambda n: "254" + n),
        _kenyan.map(lambda n: "0" + n),
    ),
)

# Safaricom's 07 ranges (core/src/daraja/mod.rs): every 07 but 073.
_safaricom = st.from_regex(r"\A7[0-24-9][0-9]{7}\Z")
schemathesis.openapi.format(
    "safaricom-phone",
    st.one_of(
        st.sampled_from(["+254700000001", "0700000001"]),
        _safaricom.map(lambda n: "+254" + n),
        _safaricom.map(lambda n: "0" + n),
    ),
)

schemathesis.openapi.format("currency", st.sampled_from(["KES", "USD", "EUR", "GBP", "NGN"]))

# Four digits that pass the strength rule (core/src/pin.rs).
schemathesis.openapi.format("pin", st.sampled_from(["9173", "4826", "7391", "5082"]))


def _luhn_digit(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


schemathesis.openapi.format(
    "voucher-code",
    st.lists(st.integers(0, 9), min_size=15, max_size=15).map(
        lambda ds: "".join(map(str, ds + [_luhn_digit(ds)]))
    ),
)

