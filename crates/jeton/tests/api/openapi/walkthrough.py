"""The README's walkthrough through a client generated from /openapi.json
(openapi-python-client): a guest browses, a customer registers, logs in,
orders and lists their orders; the publishable key cannot; an operator
stocks the shop; logging out revokes the token. Run by
openapi_conformance.rs with the generated package on PYTHONPATH."""

import os

from jeton_client import AuthenticatedClient
from jeton_client.api.admin import post_admin_products
from jeton_client.api.catalog import get_products
from jeton_client.api.customers import get_me, post_auth_login, post_auth_logout, post_customers
from jeton_client.api.orders import get_me_orders, post_orders
from jeton_client.api.tokens import get_me_tokens
from jeton_client.models import (
    Customer,
    IssuedToken,
    LoginInput,
    NewCustomerInput,
    NewProductInput,
    Order,
    OrderInput,
    PageOrder,
    PageProduct,
    PageTokenView,
    Product,
)

URL = os.environ["JETON_URL"]


def client(token):
    return AuthenticatedClient(base_url=URL, token=token, raise_on_unexpected_status=True)


def check(what, response, status, model=None):
    assert response.status_code == status, f"{what}: {response.status_code} {response.content!r}"
    if model is not None:
        assert isinstance(response.parsed, model), f"{what}: parsed as {type(response.parsed)}"
    print(f"ok: {what} ({status})")
    return response.parsed


guest = client(os.environ["JETON_PK"])
operator = client(os.environ["JETON_SK"])

# A guest browses the catalogue with the publishable key.
page = check("list products", get_products.sync_detailed(client=guest, limit=3, in_stock=True), 200, PageProduct)
assert 1 <= len(page.data) <= 3
found = check("search products", get_products.sync_detailed(client=guest, q="mug"), 200, PageProduct)
product = found.data[0]
assert "mug" in product.name.lower()

# A customer registers and logs in through the storefront.
body = NewCustomerInput(email="ann@example.com", password="correct horse", name="Ann")
ann = check("register", post_customers.sync_detailed(client=guest, body=body), 201, Customer)
assert ann.email == "ann@example.com"
body = LoginInput(email="ann@example.com", password="correct horse", device_name="laptop")
issued = check("log in", post_auth_login.sync_detailed(client=guest, body=body), 201, IssuedToken)
assert issued.token.startswith("jt_ut_")
customer = client(issued.token)

# The customer orders and lists their own orders.
body = OrderInput.from_dict({"items": [{"product_id": product.id, "quantity": 2}]})
order = check("order", post_orders.sync_detailed(client=customer, body=body), 201, Order)
assert order.items[0].quantity == 2
mine = check("my orders", get_me_orders.sync_detailed(client=customer), 200, PageOrder)
assert [o.id for o in mine.data] == [order.id]

# The publishable key cannot do any of that ...
refused = get_me_orders.sync_detailed(client=guest)
check("my orders with the publishable key", refused, 403)
assert refused.parsed.code == "insufficient_scope"
# ... and the customer can see their own tokens.
tokens = check("my tokens", get_me_tokens.sync_detailed(client=customer), 200, PageTokenView)
assert any(token.current for token in tokens.data)

# An operator stocks the shop with a secret key.
body = NewProductInput.from_dict(
    {"sku": "TEE-GREEN-S", "name": "Green tee, S", "price": {"amount": 1900, "currency": "EUR"}, "stock": 12}
)
tee = check("add a product", post_admin_products.sync_detailed(client=operator, body=body), 201, Product)
assert tee.sku == "TEE-GREEN-S"

# Logging out revokes the token at once.
check("log out", post_auth_logout.sync_detailed(client=customer), 204)
gone = get_me.sync_detailed(client=customer)
check("profile after logout", gone, 401)
assert gone.parsed.code == "invalid_token"
print("walkthrough: 11 steps passed")
