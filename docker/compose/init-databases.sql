CREATE DATABASE notaryserver OWNER notary;
CREATE DATABASE notarysigner OWNER notary;
