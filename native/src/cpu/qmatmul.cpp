// qmatmul.cpp (cpu backend): being written; until then the backend reports SI_ERR_UNSUPPORTED.
