"""The approval inbox: pages, live events, the price chart and the evidence shown beside each request."""
