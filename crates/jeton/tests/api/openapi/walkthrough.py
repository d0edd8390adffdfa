"""The README's walkthrough through a client generated from /openapi.json
(openapi-python-client): a guest browses and fills a cart, a customer
registers, logs in (taking the guest's cart) and checks it out, orders and
lists their orders; the publishable key cannot; an operator
stocks the shop; logging out revokes the token. Run by
openapi_conformance.rs with the generated package on PYTHONPATH."""

import os

from jeton_client import AuthenticatedClient
from jeton_client.api.admin import create_product
from jeton_client.api.carts import checkout_cart, get_cart, set_cart_item
from jeton_client.api.catalog import list_products
from jeton_client.api.customers import get_my_profile, log_in, log_out, register_customer
from jeton_client.api.guests import create_guest
from jeton_client.api.orders import list_my_orders, place_order
from jeton_client.api.tokens import list_my_tokens
from jeton_client.models import (
    Cart,
    CartLineInput,
    Customer,
    IssuedGuest,
    IssuedToken,
    LoginInput,
    NewGuestInput,
    NewCustomerInput,
    NewProductInput,
    Order,
    OrderInput,
    OrderPage,
    Product,
    ProductPage,
    TokenViewPage,
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
page = check("list products", list_products.sync_detailed(client=guest, limit=3, in_stock=True), 200, ProductPage)
assert 1 <= len(page.data) <= 3
found = check("search products", list_products.sync_detailed(client=guest, q="mug"), 200, ProductPage)
product = found.data[0]
assert "mug" in product.name.lower()

# The guest fills a cart on the server with a guest token of their own.
visitor = check("guest token", create_guest.sync_detailed(client=guest, body=NewGuestInput()), 201, IssuedGuest)
assert visitor.token.startswith("jt_gt_")
body = CartLineInput(quantity=1)
cart = check("add to the cart", set_cart_item.sync_detailed(str(product.id), client=client(visitor.token), body=body), 200, Cart)
assert [item.quantity for item in cart.items] == [1]

# A customer registers and logs in through the storefront.
body = NewCustomerInput(email="ann@example.com", password="correct horse", name="Ann")
ann = check("register", register_customer.sync_detailed(client=guest, body=body), 201, Customer)
assert ann.email == "ann@example.com"
body = LoginInput(email="ann@example.com", password="correct horse", device_name="laptop", guest_token=visitor.token)
issued = check("log in", log_in.sync_detailed(client=guest, body=body), 201, IssuedToken)
assert issued.token.startswith("jt_ut_")
customer = client(issued.token)

# The guest's cart is the customer's now; checking it out places it.
cart = check("my cart", get_cart.sync_detailed(client=customer), 200, Cart)
assert [(item.product_id, item.quantity) for item in cart.items] == [(product.id, 1)]
placed = check("check out", checkout_cart.sync_detailed(client=customer, idempotency_key="first-cart"), 201, Order)
assert placed.items[0].quantity == 1

# The customer orders and lists their own orders.
body = OrderInput.from_dict({"items": [{"product_id": str(product.id), "quantity": 2}]})
order = check("order", place_order.sync_detailed(client=customer, body=body), 201, Order)
assert order.items[0].quantity == 2
mine = check("my orders", list_my_orders.sync_detailed(client=customer), 200, OrderPage)
assert [o.id for o in mine.data] == [order.id, placed.id]

# The publishable key cannot do any of that ...
refused = list_my_orders.sync_detailed(client=guest)
check("my orders with the publishable key", refused, 403)
assert refused.parsed.code == "insufficient_scope"
# ... and the customer can see their own tokens.
tokens = check("my tokens", list_my_tokens.sync_detailed(client=customer), 200, TokenViewPage)
assert any(token.current for token in tokens.data)

# An operator stocks the shop with a secret key.
body = NewProductInput.from_dict(
    {"sku": "TEE-GREEN-S", "name": "Green tee, S", "price": {"amount": 1900, "currency": "EUR"}, "stock": 12}
)
tee = check("add a product", create_product.sync_detailed(client=operator, body=body), 201, Product)
assert tee.sku == "TEE-GREEN-S"

# Logging out revokes the token at once.
check("log out", log_out.sync_detailed(client=customer), 204)
gone = get_my_profile.sync_detailed(client=customer)
check("profile after logout", gone, 401)
assert gone.parsed.code == "invalid_token"
print("walkthrough: 16 steps passed")
