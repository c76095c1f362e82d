// qmatmul.cpp (ref backend): being written; until then the backend reports SI_ERR_UNSUPPORTED.
