// sparse_matmul.cu: placeholder, being written.
#include <sharpinfer/sharpinfer.h>
