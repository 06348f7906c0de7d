"""Stack composition, typed config and offline render of the ecommerce platform."""
