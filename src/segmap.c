/* segmap.c — which 4 MiB units of the address space hold keel segments.
 *
 * One byte per unit of the user address space (47 bits on x86-64: 2^25
 * units, 32 MiB of .bss that the OS backs with zero pages until a segment
 * lives in that range; a 4 MiB segment touches one byte). A byte, not two
 * bits, because free() reads it on every call: load and compare, no shifts.
 * Values:
 *   0  not keel's: free() of such a pointer is a bad free
 *   1  a segment starts at this unit
 *   2  the segment started one unit earlier (a huge block aligned to 4 MiB
 *      or more sits at unit 1 of its segment)
 * Only segment starts and 4 MiB-aligned huge blocks are marked, so an
 * interior pointer of a huge block reads 0 and is reported. */
#include "internal/internal.h"

_Atomic(uint8_t) kl_segmap[KL_MAP_UNITS];

static void set_unit(uintptr_t unit, uint8_t value) {
  /* Release: a thread that later reads this byte through a pointer it got
   * from us must also see the initialized segment header. */
  if (unit < KL_MAP_UNITS) kl_store_release(&kl_segmap[unit], value);
}

void kl_segmap_set(const kl_segment_t *seg, uintptr_t block_unit_back) {
  uintptr_t unit = (uintptr_t)seg >> KL_SEGMENT_SHIFT;
  set_unit(unit, 1);
  if (block_unit_back) set_unit(unit + 1, 2);
}

void kl_segmap_clear(const kl_segment_t *seg, uintptr_t block_unit_back) {
  uintptr_t unit = (uintptr_t)seg >> KL_SEGMENT_SHIFT;
  set_unit(unit, 0);
  if (block_unit_back) set_unit(unit + 1, 0);
}
