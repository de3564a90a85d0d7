/*-------------------------------------------------------------------------
 * export/export.h
 *		What other stages may use of exports: nothing.
 *
 * Exports are the last stage: SQL calls them (sql/install/70_export.sql),
 * and no other stage does.
 *-------------------------------------------------------------------------
 */
#ifndef EXPORT_EXPORT_H
#define EXPORT_EXPORT_H

#include "iotstream.h"

/* no declarations: see export_int.h for the stage's own */

#endif							/* EXPORT_EXPORT_H */
