/* ipckit._core.Queue: the hot paths of the named queues (fifo://, mq://). */
#ifndef IPCKIT_QUEUE_H
#define IPCKIT_QUEUE_H

#include "endpoint.h"

extern PyTypeObject ik_QueueType;

int ik_queue_module_init(void);

#endif
