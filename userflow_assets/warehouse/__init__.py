"""The first stage: the warehouse's rows, as the source queries return them."""
